package kafkaclient

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// NormalizePEM restores the line breaks of PEM text stored on one line
// with literal \n escapes, as platforms' secret stores and .env files
// often hold it, and drops carriage returns and surrounding blanks.
func NormalizePEM(s string) string {
	s = strings.ReplaceAll(s, `\r\n`, "\n")
	s = strings.ReplaceAll(s, `\n`, "\n")
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.TrimSpace(s) + "\n"
}

// maxPEM bounds a certificate or key file: a chain, not a data file.
const maxPEM = 1 << 20

// validateTLS checks the TLS material: one source each, every PEM block
// parses, the key belongs to the certificate. Errors name the flag and the
// problem, never the content.
func (c Config) validateTLS() error {
	var errs []error
	both := func(file, text, fileFlag, textFlag string) bool {
		if file != "" && text != "" {
			errs = append(errs, fmt.Errorf("%s and %s: set one, not both", fileFlag, textFlag))
			return true
		}
		return false
	}
	if !both(c.CAFile, c.CAPEM, "kafka-ca-file", "kafka-ca-pem") {
		if field, text, err := material(c.CAFile, c.CAPEM, "kafka-ca-file", "kafka-ca-pem"); err != nil {
			errs = append(errs, err)
		} else if text != "" {
			if _, err := certificates(text); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", field, err))
			}
		}
	}
	certBoth := both(c.CertFile, c.CertPEM, "kafka-cert-file", "kafka-cert-pem")
	keyBoth := both(c.KeyFile, c.KeyPEM, "kafka-key-file", "kafka-key-pem")
	if certBoth || keyBoth {
		return errors.Join(errs...)
	}
	certField, certText, certErr := material(c.CertFile, c.CertPEM, "kafka-cert-file", "kafka-cert-pem")
	keyField, keyText, keyErr := material(c.KeyFile, c.KeyPEM, "kafka-key-file", "kafka-key-pem")
	errs = append(errs, certErr, keyErr)
	if certErr != nil || keyErr != nil {
		return errors.Join(errs...)
	}
	switch {
	case certText == "" && keyText == "":
		if c.KeyPassword != "" {
			errs = append(errs, errors.New("kafka-key-password: set, but no kafka-key-file or kafka-key-pem"))
		}
		return errors.Join(errs...)
	case keyText == "":
		return errors.Join(append(errs, fmt.Errorf("%s: set, but no kafka-key-file or kafka-key-pem for it", certField))...)
	case certText == "":
		return errors.Join(append(errs, fmt.Errorf("%s: set, but no kafka-cert-file or kafka-cert-pem for it", keyField))...)
	}
	leaf, err := certificates(certText)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("%s: %w", certField, err))...)
	}
	if now := time.Now(); now.After(leaf[0].NotAfter) {
		errs = append(errs, fmt.Errorf("%s: the certificate expired at %s", certField, leaf[0].NotAfter.UTC().Format(time.RFC3339)))
	}
	encrypted, err := privateKey(keyText)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("%s: %w", keyField, err))
	case encrypted && c.KeyPassword == "":
		errs = append(errs, fmt.Errorf("%s: the key is encrypted; set kafka-key-password", keyField))
	case !encrypted:
		if _, err := tls.X509KeyPair([]byte(certText), []byte(keyText)); err != nil {
			errs = append(errs, fmt.Errorf("%s: not the key of %s's certificate", keyField, certField))
		}
	}
	return errors.Join(errs...)
}

// material returns the PEM text of a file or text setting and the flag it
// came from; "" if neither is set.
func material(file, text, fileFlag, textFlag string) (field, pemText string, err error) {
	switch {
	case text != "":
		return textFlag, NormalizePEM(text), nil
	case file == "":
		return "", "", nil
	}
	f, err := os.Open(file)
	if err != nil {
		return fileFlag, "", fmt.Errorf("%s: %w", fileFlag, err)
	}
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(io.LimitReader(f, maxPEM+1))
	if err != nil {
		return fileFlag, "", fmt.Errorf("%s: reading %s: %w", fileFlag, file, err)
	}
	if len(b) > maxPEM {
		return fileFlag, "", fmt.Errorf("%s: %s is larger than %d KiB", fileFlag, file, maxPEM>>10)
	}
	return fileFlag, string(b), nil
}

// certificates parses every CERTIFICATE block of text.
func certificates(text string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := []byte(text)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is a %q, want CERTIFICATE", len(out)+1, block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(out)+1, err)
		}
		out = append(out, cert)
	}
	if len(out) == 0 {
		return nil, errors.New("no certificate (want -----BEGIN CERTIFICATE----- blocks; lines may be joined by literal \\n)")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, fmt.Errorf("not PEM after certificate %d (want -----BEGIN CERTIFICATE----- blocks only)", len(out))
	}
	return out, nil
}

// privateKey checks text holds one private key and says if it is encrypted.
func privateKey(text string) (encrypted bool, err error) {
	block, rest := pem.Decode([]byte(text))
	if block == nil {
		return false, errors.New("no private key (want a -----BEGIN PRIVATE KEY----- block; lines may be joined by literal \\n)")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return false, errors.New("more than one PEM block; want the private key alone")
	}
	switch {
	case block.Type == "ENCRYPTED PRIVATE KEY" || block.Headers["Proc-Type"] == "4,ENCRYPTED":
		return true, nil
	case block.Type == "PRIVATE KEY":
		_, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case block.Type == "RSA PRIVATE KEY":
		_, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case block.Type == "EC PRIVATE KEY":
		_, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return false, fmt.Errorf("PEM block is a %q, want PRIVATE KEY", block.Type)
	}
	if err != nil {
		return false, fmt.Errorf("private key: %w", err)
	}
	return false, nil
}
