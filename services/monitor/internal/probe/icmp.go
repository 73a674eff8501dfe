package probe

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"syscall"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/sitewatch/sitewatch/services/monitor/internal/site"
)

// ClassPacketLoss is an icmp check whose echo requests all went unanswered.
const ClassPacketLoss = "packet_loss"

// ClassICMPSocket is an icmp check that could not open an ICMP socket: the
// monitor may use neither unprivileged ICMP (net.ipv4.ping_group_range
// must cover its group) nor raw sockets (CAP_NET_RAW).
const ClassICMPSocket = "icmp_socket"

// ICMP echo replies wait at most this long each, within the check's timeout.
const maxEchoWait = time.Second

// checkICMP checks an icmp:// site: the host's first address (the DNS
// phase; through the guard), then its count echo requests, one after
// another, each waiting for its reply (at most a second, and its share of
// the timeout). It uses an unprivileged ICMP socket where the kernel allows
// one (net.ipv4.ping_group_range; Docker sets it for containers), else a
// raw socket (CAP_NET_RAW). Replies are told apart by a random payload, so
// concurrent checks of one host never take each other's. All lost is a
// failure; fewer is recorded (sent, received, round trips).
func (p *Prober) checkICMP(ctx context.Context, t *Target, res Result) Result {
	start := time.Now()
	u, err := url.Parse(t.Site.URL)
	if err != nil {
		return failed(res, start, ClassConnect, err) // validated on the way in: a row changed by hand
	}
	count := site.ICMPCount(u)
	ip, err := netip.ParseAddr(u.Hostname())
	if err != nil {
		t0 := time.Now()
		addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", u.Hostname())
		res.Phases.DNS = time.Since(t0)
		if err != nil {
			return failed(res, start, classify(ctx, err), err)
		}
		ip = addrs[0]
	}
	ip = ip.Unmap()
	res.RemoteIP = ip.String()
	if p.cfg.Guard != nil {
		if err := p.cfg.Guard.Allowed(ip); err != nil {
			return failed(res, start, ClassBlocked, err)
		}
	}

	conn, dst, privileged, err := listenICMP(ip)
	if err != nil {
		return failed(res, start, ClassICMPSocket, fmt.Errorf("opening an ICMP socket: %w (the monitor needs net.ipv4.ping_group_range to cover its group, or CAP_NET_RAW)", err))
	}
	defer func() { _ = conn.Close() }()

	var token [8]byte
	_, _ = rand.Read(token[:])
	id := int(binary.BigEndian.Uint16(token[:2]))
	request, reply, proto := icmp.Type(ipv4.ICMPTypeEcho), icmp.Type(ipv4.ICMPTypeEchoReply), 1
	if ip.Is6() {
		request, reply, proto = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply, 58
	}
	deadline, _ := ctx.Deadline()
	var rtts []time.Duration
	buf := make([]byte, 1500)
	for seq := range count {
		payload := append(token[:], byte(seq))
		msg, err := (&icmp.Message{Type: request, Body: &icmp.Echo{ID: id, Seq: seq, Data: payload}}).Marshal(nil)
		if err != nil {
			return failed(res, start, ClassICMPSocket, err)
		}
		sent := time.Now()
		if _, err := conn.WriteTo(msg, dst); err != nil {
			if errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTDOWN) {
				res.ICMPSent++ // the kernel knows it cannot arrive: a lost request
				continue
			}
			return failed(res, start, readClass(ctx, err), fmt.Errorf("sending echo request %d: %w", seq+1, err))
		}
		res.ICMPSent++
		wait := sent.Add(min(maxEchoWait, time.Until(deadline)/time.Duration(count-seq)))
		_ = conn.SetReadDeadline(wait)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					return failed(res, start, readClass(ctx, err), fmt.Errorf("reading echo replies: %w", err))
				}
				break // lost
			}
			m, err := icmp.ParseMessage(proto, buf[:n])
			if err != nil || m.Type != reply {
				continue
			}
			// Unprivileged sockets get only their own replies, with the ID
			// the kernel chose; raw sockets see every reply on the host.
			if e, ok := m.Body.(*icmp.Echo); ok && bytes.Equal(e.Data, payload) && (!privileged || e.ID == id) {
				rtts = append(rtts, time.Since(sent))
				break
			}
		}
		if ctx.Err() != nil {
			break
		}
	}
	res.Duration = time.Since(start)
	res.ICMPReceived = len(rtts)
	if len(rtts) > 0 {
		lo, hi, sum := rtts[0], rtts[0], time.Duration(0)
		for _, d := range rtts {
			lo, hi, sum = min(lo, d), max(hi, d), sum+d
		}
		res.RTTMin, res.RTTMax, res.RTTAvg = lo, hi, sum/time.Duration(len(rtts))
		return res
	}
	res.ErrorClass = ClassPacketLoss
	res.Error = fmt.Sprintf("no echo reply from %s: %d of %d requests lost", ip, res.ICMPSent, res.ICMPSent)
	return res
}

// listenICMP opens an unprivileged ICMP socket for ip's family where the
// kernel allows one, else a raw one, and returns ip as that socket's
// destination address.
func listenICMP(ip netip.Addr) (conn *icmp.PacketConn, dst net.Addr, privileged bool, err error) {
	dgram, raw, wildcard := "udp4", "ip4:icmp", "0.0.0.0"
	if ip.Is6() {
		dgram, raw, wildcard = "udp6", "ip6:ipv6-icmp", "::"
	}
	if conn, err = icmp.ListenPacket(dgram, wildcard); err == nil {
		return conn, &net.UDPAddr{IP: ip.AsSlice()}, false, nil
	}
	conn, rawErr := icmp.ListenPacket(raw, wildcard)
	if rawErr != nil {
		return nil, nil, false, fmt.Errorf("unprivileged: %v; raw: %w", err, rawErr)
	}
	return conn, &net.IPAddr{IP: ip.AsSlice()}, true, nil
}
