package site

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// StatusSet is a set of expected HTTP status codes, written as a comma
// separated list of codes, ranges and classes: "200-399", "200,204",
// "2xx,301-308".
type StatusSet []statusRange

type statusRange struct{ lo, hi int }

// ParseStatusSet parses spec.
func ParseStatusSet(spec string) (StatusSet, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, errors.New("must not be empty; e.g. 200-399 or 2xx,301")
	}
	var set StatusSet
	for part := range strings.SplitSeq(spec, ",") {
		part = strings.TrimSpace(part)
		var r statusRange
		var err error
		switch {
		case len(part) == 3 && strings.HasSuffix(strings.ToLower(part), "xx"):
			var c int
			c, err = strconv.Atoi(part[:1])
			r = statusRange{c * 100, c*100 + 99}
		case strings.Contains(part, "-"):
			lo, hi, _ := strings.Cut(part, "-")
			r.lo, err = strconv.Atoi(strings.TrimSpace(lo))
			if err == nil {
				r.hi, err = strconv.Atoi(strings.TrimSpace(hi))
			}
		default:
			r.lo, err = strconv.Atoi(part)
			r.hi = r.lo
		}
		if err != nil || r.lo < 100 || r.hi > 599 || r.lo > r.hi {
			return nil, fmt.Errorf("%q: want status codes 100..599 as a code, a range (200-299) or a class (2xx)", part)
		}
		set = append(set, r)
	}
	return set, nil
}

// Contains reports whether code is expected.
func (s StatusSet) Contains(code int) bool {
	for _, r := range s {
		if code >= r.lo && code <= r.hi {
			return true
		}
	}
	return false
}
