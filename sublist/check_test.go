package sublist

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, ok := range []string{"/topic/a", "/topic/*", "/topic/>", "/topic/#", "#", ">", "*.b", "a.#.b", "#orders", "/queue/#orders", "a#b", "", "/topic/a.>"} {
		if err := Check(ok); err != nil {
			t.Errorf("Check(%q) = %v", ok, err)
		}
	}
	for bad, want := range map[string]string{
		"/topic/stocks*":   `pattern "/topic/stocks*": '*' inside the segment "stocks*"; a wildcard is a whole segment, as in "/topic/stocks.*"`,
		"/topic/a>":        `'>' inside the segment "a>"; a wildcard is a whole segment, as in "/topic/a.*"`,
		"/topic/*x.y":      `'*' inside the segment "*x"; a wildcard is a whole segment, as in "/topic/*.y"`,
		"/topic/>/x":       `pattern "/topic/>/x": '>' must be the last segment (use '*' for one segment, '#' for any number)`,
		">.a":              "'>' must be the last segment",
		"/queue/orders.>*": `'>' inside the segment ">*"`,
	} {
		err := Check(bad)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Check(%q) = %v, want %q", bad, err, want)
		}
	}
}
