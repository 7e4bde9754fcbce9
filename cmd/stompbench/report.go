package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"
)

// seqSet is a bitmap of the sequence numbers seen; mark is safe for
// concurrent use, so consumers of one queue share a set.
type seqSet struct{ bits []uint64 }

func newSeqSet(n int) *seqSet { return &seqSet{bits: make([]uint64, (n+63)/64)} }

// mark sets bit i and reports whether it was clear.
func (s *seqSet) mark(i uint64) bool {
	m := uint64(1) << (i & 63)
	return atomic.OrUint64(&s.bits[i>>6], m)&m == 0
}

func (s *seqSet) count() int64 {
	n := 0
	for i := range s.bits {
		n += bits.OnesCount64(atomic.LoadUint64(&s.bits[i]))
	}
	return int64(n)
}

// subStat is one receiving connection's accounting. Only count is read while
// the run goes on; the rest belongs to the connection's goroutine.
type subStat struct {
	count   atomic.Int64 // deliveries, including duplicates and stale ones
	set     *seqSet
	ordered bool // count deliveries of a lower sequence number than seen before

	distinct, dups, ooo, stale int64
	next                       uint64 // highest sequence number seen + 1
	lastNS                     int64  // time of the last new delivery
	lat                        []int64
}

// record accounts the delivery of seq at now and reports whether it is new.
func (s *subStat) record(seq uint64, now int64) bool {
	s.count.Add(1)
	if !s.set.mark(seq) {
		s.dups++
		return false
	}
	s.distinct++
	s.lastNS = now
	if s.ordered {
		if seq < s.next {
			s.ooo++
		} else {
			s.next = seq + 1
		}
	}
	return true
}

// accounting sums the subStats of a run.
type accounting struct {
	expected                          int64 // per subscriber (0: not per subscriber)
	delivered, loss, dups, ooo, stale int64
	lastNS                            int64
	lossPer, dupsPer                  []int64
}

func accountSubs(subs []*subStat, expected int64) accounting {
	a := accounting{expected: expected}
	for _, s := range subs {
		a.delivered += s.count.Load()
		a.dups += s.dups
		a.ooo += s.ooo
		a.stale += s.stale
		a.lastNS = max(a.lastNS, s.lastNS)
		a.dupsPer = append(a.dupsPer, s.dups)
		if expected > 0 {
			l := expected - s.distinct
			a.loss += l
			a.lossPer = append(a.lossPer, l)
		}
	}
	return a
}

// percentiles returns the nearest-rank percentiles q (0..1] of v, sorting v.
func percentiles(v []int64, qs ...float64) []int64 {
	out := make([]int64, len(qs))
	if len(v) == 0 {
		return out
	}
	slices.Sort(v)
	for i, q := range qs {
		k := int(math.Ceil(q*float64(len(v)))) - 1
		out[i] = v[min(max(k, 0), len(v)-1)]
	}
	return out
}

// report is the result of a run: ordered items shown as a table or JSON.
type report struct {
	scenario, url, server, status string
	errors                        []string
	bad                           bool // loss or duplicates
	OK                            bool
	items                         []item
}

type item struct {
	key, label string
	val        any
	unit       string
	text       string // table text when not the value itself
}

func newReport(b *bench) *report { return &report{scenario: b.cfg.scenario, url: b.opts.url} }

func (r *report) add(key, label string, val any, unit string) {
	r.items = append(r.items, item{key: key, label: label, val: val, unit: unit})
}

// addList adds a per-connection list, shown in the table as its nonzero entries.
func (r *report) addList(key, label string, v []int64) {
	r.items = append(r.items, item{key: key, label: label, val: v, text: listText(v)})
}

func listText(v []int64) string {
	var parts []string
	nonzero := 0
	for i, x := range v {
		if x != 0 {
			nonzero++
			if len(parts) < 8 {
				parts = append(parts, fmt.Sprintf("#%d:%d", i, x))
			}
		}
	}
	switch {
	case len(v) <= 8:
		return strings.Trim(fmt.Sprint(v), "[]")
	case nonzero == 0:
		return fmt.Sprintf("all %d zero", len(v))
	case nonzero > len(parts):
		parts = append(parts, fmt.Sprintf("... (%d nonzero)", nonzero))
	}
	return strings.Join(parts, " ")
}

func nsSeconds(ns int64) float64 { return float64(ns) / 1e9 }

func rate(n int64, seconds float64) float64 {
	if seconds <= 0 {
		return 0
	}
	return float64(n) / seconds
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func (r *report) pubRate(ps *pubStat, n int) {
	if ps.finished {
		r.add("publish_msgs_per_s", "publisher msgs/s", rate(int64(n), nsSeconds(ps.endNS-ps.startNS)), "msg/s")
	}
}

func (r *report) accounting(a accounting, per string) {
	if a.expected > 0 || per == "" {
		r.add("loss", "lost", a.loss, "")
	}
	r.add("dups", "duplicates", a.dups, "")
	if per != "" {
		r.add("out_of_order", "out of order", a.ooo, "")
		if a.expected > 0 {
			r.addList("loss_per_"+per, "lost per "+per, a.lossPer)
		}
		r.addList("dups_per_"+per, "duplicates per "+per, a.dupsPer)
	}
	r.add("stale", "foreign messages (other runs)", a.stale, "")
	r.bad = r.bad || a.loss != 0 || a.dups != 0 || a.ooo != 0
}

// resources adds broker and client CPU per unit (delivery, message) and RSS.
func (r *report) resources(before, after sample, n int64, unit string) {
	wall := after.at.Sub(before.at).Seconds()
	if before.err == nil && after.err == nil && !before.at.IsZero() && before.rss > 0 {
		cpu := after.cpu - before.cpu
		if n > 0 {
			r.add("broker_cpu_us_per_"+unit, "broker CPU per "+unit, float64(cpu.Nanoseconds())/1e3/float64(n), "µs")
		}
		r.add("broker_cpu_pct", "broker CPU", 100*cpu.Seconds()/wall, "%")
		r.add("broker_rss_mb", "broker RSS", mib(after.rss), "MiB")
	} else if err := nonNil(before.err, after.err); err != nil {
		r.errors = append(r.errors, "--pid: "+err.Error())
	}
	own := after.own - before.own
	if n > 0 {
		r.add("client_cpu_us_per_"+unit, "stompbench CPU per "+unit, float64(own.Nanoseconds())/1e3/float64(n), "µs")
	}
	r.add("client_cpu_pct", "stompbench CPU", 100*own.Seconds()/wall, "%")
}

// finish stops the run and settles the verdict.
func (b *bench) finish(r *report) {
	b.stop()
	b.mu.Lock()
	r.server = b.server
	r.errors = append(r.errors, b.errs...)
	if b.nerrs > len(b.errs) {
		r.errors = append(r.errors, fmt.Sprintf("... and %d more errors", b.nerrs-len(b.errs)))
	}
	b.mu.Unlock()
	if r.status == "" {
		r.status = "failed"
	}
	r.OK = r.status == "complete" && len(r.errors) == 0 && !r.bad
}

func formatVal(v any) string {
	switch x := v.(type) {
	case float64:
		switch a := math.Abs(x); {
		case a >= 10000:
			return strconv.FormatFloat(x, 'f', 0, 64)
		case a >= 100:
			return strconv.FormatFloat(x, 'f', 1, 64)
		default:
			return strconv.FormatFloat(x, 'f', 2, 64)
		}
	case []int64:
		return listText(x)
	}
	return fmt.Sprint(v)
}

func (r *report) verdict() string {
	if r.OK {
		return "OK"
	}
	return "FAIL"
}

func (r *report) writeTable(w io.Writer) {
	fmt.Fprintf(w, "stompbench %s %s", r.scenario, r.url)
	if r.server != "" {
		fmt.Fprintf(w, " (%s)", r.server)
	}
	fmt.Fprintf(w, "\n  status: %s, %s\n", r.status, r.verdict())
	texts := make([]string, len(r.items))
	lw, vw := 0, 0
	for i, it := range r.items {
		texts[i] = it.text
		if texts[i] == "" {
			texts[i] = formatVal(it.val)
		}
		lw = max(lw, utf8.RuneCountInString(it.label))
		if it.text == "" {
			vw = max(vw, len(texts[i]))
		}
	}
	for i, it := range r.items {
		line := fmt.Sprintf("  %-*s  %*s %s", lw, it.label, vw, texts[i], it.unit)
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
	for _, e := range r.errors {
		fmt.Fprintf(w, "  error: %s\n", e)
	}
}

func (r *report) writeJSON(w io.Writer) {
	var buf bytes.Buffer
	field := func(k string, v any) {
		if f, ok := v.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
			v = nil
		}
		kb, _ := json.Marshal(k)
		vb, _ := json.Marshal(v)
		if buf.Len() > 1 {
			buf.WriteByte(',')
		}
		buf.Write(kb)
		buf.WriteByte(':')
		buf.Write(vb)
	}
	buf.WriteByte('{')
	field("scenario", r.scenario)
	field("url", r.url)
	field("server", r.server)
	field("status", r.status)
	field("ok", r.OK)
	errs := r.errors
	if errs == nil {
		errs = []string{}
	}
	field("errors", errs)
	for _, it := range r.items {
		field(it.key, it.val)
	}
	buf.WriteString("}\n")
	w.Write(buf.Bytes())
}

// procStats reads the CPU time (utime+stime) and RSS of process pid.
func procStats(pid int) (time.Duration, int64, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	cpu, err := parseProcStat(stat)
	if err != nil {
		return 0, 0, err
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	rss, err := parseVmRSS(status)
	return cpu, rss, err
}

// clockTick is USER_HZ, 100 on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

func parseProcStat(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("malformed /proc stat times")
	}
	return time.Duration(ut+st) * clockTick, nil
}

func parseVmRSS(b []byte) (int64, error) {
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
