// Mint trackedge open, click and unsubscribe URLs (token v1), Go's standard library only.
//
//	TRACKEDGE_SECRET=... TRACKEDGE_KEY_ID=k1 TRACKEDGE_BASE_URL=https://t.example.com \
//	  go run mint.go click '{"c":"spring-sale","r":"r-42","l":"hero","u":"https://shop.example.com/"}'
//
// It refuses what trackedge refuses, with trackedge's reasons (vectors.json
// holds the cases every minter is tested on). `s` (send time) is set to now
// unless given (`"s": null` leaves it out): it feeds machine-click
// detection. Any other null field is as if absent.
package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	maxIDChars     = 128
	maxAttrs       = 16
	maxURLBytes    = 2048
	maxTokenBytes  = 4096
	minSecretBytes = 32
)

var routes = map[string][2]string{"open": {"o", "/o/%s.gif"}, "click": {"c", "/c/%s"}, "unsubscribe": {"u", "/u/%s"}}

// Refused is a field trackedge would refuse; the message names the field and why.
type Refused struct{ msg string }

func (r Refused) Error() string { return r.msg }

func refuse(format string, a ...any) error { return Refused{fmt.Sprintf(format, a...)} }

// ipv4 is the WHATWG IPv4 parser: dotted decimal, octal (0..) and hex (0x..) parts.
func ipv4(host string) (string, bool) {
	parts := strings.Split(host, ".")
	if len(parts) > 1 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	if len(parts) > 4 {
		return "", false
	}
	nums := make([]uint64, 0, 4)
	for _, p := range parts {
		if p == "" {
			return "", false
		}
		base, digits := 10, p
		if len(p) >= 2 && strings.EqualFold(p[:2], "0x") {
			base, digits = 16, p[2:]
		} else if len(p) > 1 && p[0] == '0' {
			base, digits = 8, p[1:]
		}
		n := uint64(0)
		if digits != "" {
			v, err := strconv.ParseUint(digits, base, 64)
			if err != nil {
				return "", false
			}
			n = v
		}
		nums = append(nums, n)
	}
	last := nums[len(nums)-1]
	for _, n := range nums[:len(nums)-1] {
		if n > 255 {
			return "", false
		}
	}
	if last >= uint64(1)<<(8*(5-len(nums))) {
		return "", false
	}
	n := last
	for i, v := range nums[:len(nums)-1] {
		n += v << (8 * (3 - i))
	}
	return fmt.Sprintf("%d.%d.%d.%d", n>>24&255, n>>16&255, n>>8&255, n&255), true
}

var (
	hexGroup = regexp.MustCompile(`^[0-9A-Fa-f]{1,4}$`)
	v4Tail   = regexp.MustCompile(`^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$`)
	v6Chars  = regexp.MustCompile(`^[0-9A-Fa-f:.]+$`)
)

// ipv6 gives the WHATWG serialization of an IPv6 literal (without brackets).
func ipv6(body string) (string, bool) {
	if strings.Count(body, "::") > 1 || !v6Chars.MatchString(body) {
		return "", false
	}
	groups := func(s string) ([]int, bool) {
		var out []int
		if s == "" {
			return out, true
		}
		gs := strings.Split(s, ":")
		for i, g := range gs {
			if m := v4Tail.FindStringSubmatch(g); m != nil && i == len(gs)-1 {
				var b [4]int
				for j, x := range m[1:] {
					v, _ := strconv.Atoi(x)
					if v > 255 || len(x) > 1 && x[0] == '0' {
						return nil, false
					}
					b[j] = v
				}
				out = append(out, b[0]<<8|b[1], b[2]<<8|b[3])
			} else if hexGroup.MatchString(g) {
				v, _ := strconv.ParseUint(g, 16, 16)
				out = append(out, int(v))
			} else {
				return nil, false
			}
		}
		return out, true
	}
	head, tail, compressed := strings.Cut(body, "::")
	h, ok1 := groups(head)
	t, ok2 := groups(tail)
	if !ok1 || !ok2 || !compressed && len(h) != 8 || compressed && len(h)+len(t) > 7 {
		return "", false
	}
	g := append(append(h, make([]int, 8-len(h)-len(t))...), t...)
	bestLen, bestAt, start := 0, -1, -1 // the longest run of two or more zeros, the first on a tie
	for i := 0; i <= 8; i++ {
		if i < 8 && g[i] == 0 {
			if start < 0 {
				start = i
			}
		} else if start >= 0 {
			if i-start > bestLen && i-start > 1 {
				bestLen, bestAt = i-start, start
			}
			start = -1
		}
	}
	hexes := make([]string, 8)
	for i, v := range g {
		hexes[i] = strconv.FormatInt(int64(v), 16)
	}
	if bestAt < 0 {
		return strings.Join(hexes, ":"), true
	}
	return strings.Join(hexes[:bestAt], ":") + "::" + strings.Join(hexes[bestAt+bestLen:], ":"), true
}

var (
	httpPrefix    = regexp.MustCompile(`(?i)^https?://`)
	upToPath      = regexp.MustCompile(`^[^/?#]*`)
	percentByte   = regexp.MustCompile(`%[0-9A-Fa-f]{2}`)
	forbiddenHost = regexp.MustCompile(`[\x00-\x20#%/:<>?@\[\\\]^|\x7f]`)
	numericLabel  = regexp.MustCompile(`^(\d+|0[xX][0-9A-Fa-f]*)$`)
	digitsOnly    = regexp.MustCompile(`^\d*$`)
)

// destinationError says why trackedge would refuse u as a destination (its
// check_destination), or "".
func destinationError(u string) string {
	if len(u) > maxURLBytes {
		return "longer than 2048 bytes"
	}
	for _, ch := range u {
		if ch < 0x21 || ch >= 0x7f || ch == '\\' {
			return "contains whitespace, control, non-ASCII or backslash characters"
		}
	}
	if !httpPrefix.MatchString(u) {
		return "not an absolute http(s) URL"
	}
	rest := u[strings.Index(u, "://")+3:]
	authority := upToPath.FindString(rest)
	// A browser skips further slashes after "https://" and reads the host there.
	effective := upToPath.FindString(strings.TrimLeft(rest, "/"))
	userinfo, hostport := "", effective
	if at := strings.LastIndex(effective, "@"); at >= 0 {
		userinfo, hostport = effective[:at], effective[at+1:]
	}
	var host, port string
	hasPort := false
	if strings.HasPrefix(hostport, "[") {
		close := strings.Index(hostport, "]")
		if close < 0 {
			return "does not parse as a URL"
		}
		host, port = hostport[:close+1], hostport[close+1:]
		if port != "" {
			if port[0] != ':' {
				return "does not parse as a URL"
			}
			port, hasPort = port[1:], true
		}
	} else {
		host, port, hasPort = strings.Cut(hostport, ":")
	}
	if hasPort && port != "" {
		if !digitsOnly.MatchString(port) {
			return "does not parse as a URL"
		}
		if p, err := strconv.ParseUint(port, 10, 64); err != nil || p > 65535 {
			return "does not parse as a URL"
		}
	}
	var parsed string
	if strings.HasPrefix(host, "[") {
		v6, ok := ipv6(host[1 : len(host)-1])
		if !ok {
			return "does not parse as a URL"
		}
		parsed = "[" + v6 + "]"
	} else {
		decoded := percentByte.ReplaceAllStringFunc(host, func(m string) string {
			b, _ := strconv.ParseUint(m[1:], 16, 8)
			return string(rune(b))
		})
		if decoded == "" || forbiddenHost.MatchString(decoded) {
			return "does not parse as a URL"
		}
		labels := strings.Split(strings.TrimRight(decoded, "."), ".")
		if last := labels[len(labels)-1]; last != "" && numericLabel.MatchString(last) {
			v4, ok := ipv4(decoded)
			if !ok {
				return "does not parse as a URL"
			}
			parsed = v4
		} else {
			parsed = strings.ToLower(decoded)
		}
	}
	if userinfo != "" && userinfo != ":" {
		return "carries userinfo"
	}
	if authority == "" {
		return "has an empty authority"
	}
	raw := authority
	if colon := strings.LastIndex(authority, ":"); colon >= 0 && !strings.Contains(authority[colon:], "]") {
		raw = authority[:colon]
	}
	if !strings.EqualFold(parsed, raw) {
		return "has a host the URL parser reads differently"
	}
	return ""
}

var jsonInteger = regexp.MustCompile(`^-?(0|[1-9]\d*)$`)

// unixSeconds reads an integer JSON number ("s", "x"): not a string, not 1.5.
func unixSeconds(raw json.RawMessage) (int64, bool) {
	if !jsonInteger.Match(raw) {
		return 0, false
	}
	v, err := strconv.ParseInt(string(raw), 10, 64)
	return v, err == nil
}

// Check returns the claims JSON (without k and t) that trackedge would accept
// for kind, in `trackedge sign`'s order, with s set to now when missing; a
// Refused error says what is wrong.
func Check(kind string, fieldsJSON []byte) ([]byte, error) {
	if _, ok := routes[kind]; !ok {
		return nil, refuse("kind %q: expected open, click or unsubscribe", kind)
	}
	var all map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(fieldsJSON))
	if err := dec.Decode(&all); err != nil || all == nil {
		return nil, refuse("fields must be a JSON object")
	}
	f := map[string]json.RawMessage{}
	for k, v := range all {
		if string(v) != "null" {
			f[k] = v
		}
	}
	var out bytes.Buffer
	put := func(k string, v any) {
		enc := json.NewEncoder(&out)
		enc.SetEscapeHTML(false) // "&" stays "&", as in every other minter
		out.WriteString(`,"` + k + `":`)
		if err := enc.Encode(v); err != nil {
			panic(err)
		}
		out.Truncate(out.Len() - 1) // Encode's newline
	}
	str := func(k string) (string, bool, error) {
		raw, ok := f[k]
		if !ok {
			return "", false, nil
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", true, refuse("%s: must be a string", k)
		}
		return s, true, nil
	}
	c, ok, err := str("c")
	if !ok || err != nil || utf8.RuneCountInString(c) < 1 || utf8.RuneCountInString(c) > maxIDChars {
		return nil, refuse("c: campaign must be 1-128 characters")
	}
	put("c", c)
	for _, k := range []string{"r", "m", "l"} {
		s, ok, err := str(k)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if utf8.RuneCountInString(s) > maxIDChars {
			return nil, refuse("%s: an id is longer than 128 characters", k)
		}
		put(k, s)
	}
	u, ok, err := str("u")
	if err != nil {
		return nil, err
	}
	if ok {
		if why := destinationError(u); why != "" {
			return nil, refuse("u: %s", why)
		}
		put("u", u)
	} else if kind == "click" {
		return nil, refuse("u: a click needs a destination URL")
	}
	times := map[string]int64{}
	for _, k := range []string{"s", "x"} {
		if raw, ok := f[k]; ok {
			v, ok := unixSeconds(raw)
			if !ok {
				return nil, refuse("%s: must be an integer (unix seconds)", k)
			}
			times[k] = v
		}
	}
	now := time.Now().Unix()
	if s, ok := times["s"]; ok {
		put("s", s)
	} else if _, asked := all["s"]; !asked { // "s": null asks for no send time
		put("s", now)
	}
	if x, ok := times["x"]; ok {
		if x <= now {
			return nil, refuse("x: already past: an expired token is invalid")
		}
		put("x", x)
	}
	if raw, ok := f["a"]; ok {
		var a map[string]string
		if json.Unmarshal(raw, &a) != nil || a == nil {
			return nil, refuse("a: must be an object of string to string")
		}
		if len(a) > maxAttrs {
			return nil, refuse("a: more than 16 attributes")
		}
		put("a", a) // encoding/json sorts the keys, as trackedge does
	}
	return out.Bytes()[1:], nil
}

// Token mints a token; fieldsJSON holds c (campaign, required), r, m, l,
// u (destination), s, x (unix seconds), a (object).
func Token(secret, keyID, kind string, fieldsJSON []byte) (string, error) {
	claims, err := Check(kind, fieldsJSON)
	if err != nil {
		return "", err
	}
	k, _ := json.Marshal(keyID)
	head := fmt.Sprintf(`{"k":%s,"t":"%s",`, k, routes[kind][0])
	payload := base64.RawURLEncoding.EncodeToString(append([]byte(head), append(claims, '}')...))
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("trackedge:v1:" + payload))
	tok := payload + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:16])
	if len(tok) > maxTokenBytes {
		return "", refuse("token: longer than 4096 bytes (shorten a, u or the ids)")
	}
	return tok, nil
}

func URL(base, kind string, fieldsJSON []byte, secret, keyID string) (string, error) {
	tok, err := Token(secret, keyID, kind, fieldsJSON)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(base, "/") + fmt.Sprintf(routes[kind][1], tok), nil
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, `usage: mint open|click|unsubscribe '{"c":"campaign",...}'`)
		os.Exit(64)
	}
	secret := os.Getenv("TRACKEDGE_SECRET")
	if secret == "" {
		fmt.Fprintln(os.Stderr, "mint: TRACKEDGE_SECRET is not set: use the secret of one of the server's signing.keys "+
			"(for the Quick start server, the development key: see examples/senders/README.md)")
		os.Exit(64)
	}
	if len(secret) < minSecretBytes {
		fmt.Fprintln(os.Stderr, "mint: TRACKEDGE_SECRET is shorter than 32 bytes: trackedge refuses such keys")
		os.Exit(64)
	}
	if !json.Valid([]byte(os.Args[2])) {
		fmt.Fprintln(os.Stderr, "mint: fields are not JSON")
		os.Exit(64)
	}
	base, keyID := os.Getenv("TRACKEDGE_BASE_URL"), os.Getenv("TRACKEDGE_KEY_ID")
	if base == "" {
		base = "http://localhost:8080"
	}
	if keyID == "" {
		keyID = "k1"
	}
	u, err := URL(base, os.Args[1], []byte(os.Args[2]), secret, keyID)
	var refused Refused
	if errors.As(err, &refused) {
		fmt.Fprintln(os.Stderr, "mint:", err)
		os.Exit(64)
	} else if err != nil {
		panic(err)
	}
	fmt.Println(u)
}
