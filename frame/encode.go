package frame

import "strconv"

// Append encodes f for a peer speaking version v and appends it to dst.
// Header keys and values are escaped as v requires (never in CONNECT, STOMP
// and CONNECTED frames, never in 1.0). A content-length header is added when
// the body is not empty and f has none, so bodies with NUL bytes survive; a
// content-length header in f is trusted as it is.
//
// Where nothing is escaped, a header key must not hold ':' or LF and a value
// no LF; in 1.0 and 1.1 a value must not end with CR (it would read as part
// of a CR LF line end). Append does not check this: such a header is written
// as it is and does not read back the same.
func Append(dst []byte, f *Frame, v Version) []byte {
	dst = append(dst, f.Command...)
	dst = append(dst, '\n')
	escape := v >= Version11 && f.Command != CONNECT && f.Command != STOMP && f.Command != CONNECTED
	hasLen := false
	for _, h := range f.Headers {
		if string(h.Key) == "content-length" {
			hasLen = true
		}
		if escape {
			dst = AppendEscaped(dst, h.Key, v)
			dst = append(dst, ':')
			dst = AppendEscaped(dst, h.Value, v)
		} else {
			dst = append(dst, h.Key...)
			dst = append(dst, ':')
			dst = append(dst, h.Value...)
		}
		dst = append(dst, '\n')
	}
	if !hasLen && len(f.Body) > 0 {
		dst = append(dst, "content-length:"...)
		dst = strconv.AppendInt(dst, int64(len(f.Body)), 10)
		dst = append(dst, '\n')
	}
	dst = append(dst, '\n')
	dst = append(dst, f.Body...)
	return append(dst, 0)
}

// AppendHeader appends one "key:value\n" header line escaped for v (1.1+).
func AppendHeader(dst []byte, key, value string, v Version) []byte {
	dst = AppendEscaped(dst, key, v)
	dst = append(dst, ':')
	dst = AppendEscaped(dst, value, v)
	return append(dst, '\n')
}

// escapable marks the bytes some version escapes: backslash, LF, colon, CR.
var escapable = [256]bool{'\\': true, '\n': true, ':': true, '\r': true}

// NeedsEscape reports whether s contains a byte that some version escapes.
// It runs on headers of published messages the parser has not vouched for
// (see Frame.Plain): eight bytes at a time (as index3 does), the last
// eight too, and a string shorter than that a table lookup per byte, with
// no branch on the byte's value.
func NeedsEscape[S ~string | ~[]byte](s S) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	const mb, ml, mc, mr = lo * '\\', lo * '\n', lo * ':', lo * '\r'
	i := 0
	for ; i+8 <= len(s); i += 8 {
		_ = s[i+7] // one bounds check for the eight loads
		x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		xb, xl, xc, xr := x^mb, x^ml, x^mc, x^mr
		if ((xb-lo)&^xb|(xl-lo)&^xl|(xc-lo)&^xc|(xr-lo)&^xr)&hi != 0 {
			return true
		}
	}
	if i < len(s) && len(s) >= 8 {
		// The last eight bytes, some looked at already.
		i = len(s) - 8
		_ = s[i+7]
		x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		xb, xl, xc, xr := x^mb, x^ml, x^mc, x^mr
		return ((xb-lo)&^xb|(xl-lo)&^xl|(xc-lo)&^xc|(xr-lo)&^xr)&hi != 0
	}
	for ; i < len(s); i++ {
		if escapable[s[i]] {
			return true
		}
	}
	return false
}

// AppendEscaped appends s escaped for version v: nothing is escaped in 1.0;
// backslash, LF and colon in 1.1; also CR in 1.2.
func AppendEscaped[S ~string | ~[]byte](dst []byte, s S, v Version) []byte {
	if v == Version10 || !NeedsEscape(s) {
		return append(dst, s...)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\n':
			dst = append(dst, '\\', 'n')
		case ':':
			dst = append(dst, '\\', 'c')
		case '\r':
			if v >= Version12 {
				dst = append(dst, '\\', 'r')
			} else {
				dst = append(dst, c)
			}
		default:
			dst = append(dst, c)
		}
	}
	return dst
}
