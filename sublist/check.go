package sublist

import (
	"fmt"
	"strings"
)

// Check reports a pattern that is likely a mistake where a rule is written
// (an ACL file): a '*' or '>' inside a segment ("/topic/stocks*", the
// original stompica's prefix match, which this package takes literally), or
// a '>' that is not the last segment (which matches one segment, like '*').
// '#' inside a segment is a literal, as in the original's work queue names
// ("#orders"). The error says how to write what was probably meant.
func Check(pattern string) error {
	start := 0
	for i := 0; i <= len(pattern); i++ {
		if i < len(pattern) && pattern[i] != '/' && pattern[i] != '.' {
			continue
		}
		seg := pattern[start:i]
		switch j := strings.IndexAny(seg, "*>"); {
		case seg == ">" && i != len(pattern):
			return fmt.Errorf("pattern %q: '>' must be the last segment (use '*' for one segment, '#' for any number)", pattern)
		case isWild(seg) || j < 0:
		default:
			// "/topic/stocks*" -> "/topic/stocks.*"; "/topic/*x.y" -> "/topic/*.y"
			fix := seg[:j] + ".*"
			if j == 0 {
				fix = "*"
			}
			return fmt.Errorf("pattern %q: '%c' inside the segment %q; a wildcard is a whole segment, as in %q",
				pattern, seg[j], seg, pattern[:start]+fix+pattern[i:])
		}
		start = i + 1
	}
	return nil
}
