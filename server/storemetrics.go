package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stompica/stompica/store"
)

// storeCollector reports a persistent store's state when scraped (nothing
// with the memory store).
type storeCollector struct {
	s                                    *Server
	messages, bytes, pending, duplicates *prometheus.Desc
	latency                              *prometheus.Desc
}

func newStoreCollector(s *Server) *storeCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("stompica_store_"+name, help, nil, nil)
	}
	return &storeCollector{
		s:          s,
		messages:   d("messages", "Queue messages in the persistent store (--data-dir, --nats), not yet acknowledged."),
		bytes:      d("bytes", "Bytes of the queue messages in the persistent store."),
		pending:    d("pending_publishes", "Messages sent to the store and not yet confirmed (their RECEIPT waits)."),
		duplicates: d("duplicates_total", "SENDs not stored again: their x-dedup-id was seen within --dedup-window."),
		latency:    d("latency_seconds", "Round trip of the last message the store confirmed."),
	}
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.messages, c.bytes, c.pending, c.duplicates, c.latency} {
		ch <- d
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	rep, ok := c.s.router.store.(store.Reporter)
	if !ok {
		return
	}
	r, err := rep.Report()
	if err != nil {
		c.s.log.Warn("metrics: store report", "err", err)
		return
	}
	g := func(d *prometheus.Desc, t prometheus.ValueType, v float64) {
		ch <- prometheus.MustNewConstMetric(d, t, v)
	}
	g(c.messages, prometheus.GaugeValue, float64(r.Messages))
	g(c.bytes, prometheus.GaugeValue, float64(r.Bytes))
	g(c.pending, prometheus.GaugeValue, float64(r.Pending))
	g(c.duplicates, prometheus.CounterValue, float64(r.Duplicates))
	g(c.latency, prometheus.GaugeValue, r.Latency.Seconds())
}
