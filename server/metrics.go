package server

import "github.com/prometheus/client_golang/prometheus"

// brokerCollector reads the Server's atomic counters and gauges when
// scraped (/metrics, metricsHandler in http.go): nothing is recorded per
// message beyond the counters themselves. What it reports are the tables
// brokerMetrics and labelledMetrics.
type brokerCollector struct {
	s        *Server
	descs    []*prometheus.Desc // brokerMetrics[i]'s descriptor
	labelled []*prometheus.Desc // labelledMetrics[i]'s descriptor
}

func newBrokerCollector(s *Server) *brokerCollector {
	bc := &brokerCollector{s: s}
	for _, m := range brokerMetrics {
		bc.descs = append(bc.descs, prometheus.NewDesc("stompica_"+m.name, m.help, nil, nil))
	}
	for _, m := range labelledMetrics {
		bc.labelled = append(bc.labelled, prometheus.NewDesc("stompica_"+m.name, m.help, []string{m.label}, nil))
	}
	return bc
}

// Describe sends every descriptor (the collector is checked, not "unchecked").
func (bc *brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range bc.descs {
		ch <- d
	}
	for _, d := range bc.labelled {
		ch <- d
	}
}

// Collect reads one snapshot (with the queues) and sends every series of
// every metric of the tables.
func (bc *brokerCollector) Collect(ch chan<- prometheus.Metric) {
	sc := &scrape{snapshot: bc.s.snapshot(snapQueues), maxConns: bc.s.maxConns}
	for i, m := range brokerMetrics {
		ch <- prometheus.MustNewConstMetric(bc.descs[i], m.typ, m.value(sc))
	}
	for i, m := range labelledMetrics {
		m.series(sc, func(v float64, labelValue string) {
			ch <- prometheus.MustNewConstMetric(bc.labelled[i], m.typ, v, labelValue)
		})
	}
}

// scrape is what one scrape reads: a snapshot with the queues, and the
// connection limit in force.
type scrape struct {
	*snapshot
	maxConns int
}

const (
	gauge   = prometheus.GaugeValue
	counter = prometheus.CounterValue
)

// brokerMetric is a metric of one series, named "stompica_"+name.
type brokerMetric struct {
	name  string
	typ   prometheus.ValueType
	help  string
	value func(sc *scrape) float64
}

// brokerMetrics are the broker's metrics of one series each.
var brokerMetrics = []brokerMetric{
	{"start_time_seconds", gauge, "When the broker started, in seconds since the Unix epoch.", func(sc *scrape) float64 { return float64(sc.Start.UnixNano()) / 1e9 }},
	{"http_connections", gauge, "HTTP connections open now (not upgraded to WebSocket; they count against the connection limit).", func(sc *scrape) float64 { return float64(sc.HTTP) }},
	{"max_connections", gauge, "The connection limit in force (max_connections, lowered to fit the open-file limit).", func(sc *scrape) float64 { return float64(sc.maxConns) }},
	{"refused_connections_total", counter, "Connections refused (connection limit, shutting down).", func(sc *scrape) float64 { return float64(sc.Counters.Refused) }},
	{"connected", gauge, "Connections past CONNECT (STOMP sessions) now.", func(sc *scrape) float64 { return float64(sc.Connected) }},
	{"subscriptions", gauge, "Subscriptions now.", func(sc *scrape) float64 { return float64(sc.Subscriptions) }},
	{"slow_consumer_disconnects_total", counter, "Connections closed as slow consumers.", func(sc *scrape) float64 { return float64(sc.Counters.SlowConsumers) }},

	{"frames_in_total", counter, "STOMP frames received from clients.", func(sc *scrape) float64 { return float64(sc.Counters.FramesIn) }},
	{"messages_in_total", counter, "Messages published (SEND frames routed, committed transactions included).", func(sc *scrape) float64 { return float64(sc.Counters.MessagesIn) }},
	{"bytes_in_total", counter, "Bytes read from clients (STOMP stream; WebSocket payloads).", func(sc *scrape) float64 { return float64(sc.Counters.BytesIn) }},
	{"bytes_out_total", counter, "Bytes written to clients.", func(sc *scrape) float64 { return float64(sc.Counters.BytesOut) }},
	{"deliveries_total", counter, "MESSAGE frames queued to subscribers (redeliveries included).", func(sc *scrape) float64 { return float64(sc.Counters.Deliveries) }},
	{"acks_total", counter, "Messages acknowledged by ACK frames.", func(sc *scrape) float64 { return float64(sc.Counters.Acks) }},
	{"nacks_total", counter, "Messages rejected by NACK frames.", func(sc *scrape) float64 { return float64(sc.Counters.Nacks) }},
	{"redeliveries_total", counter, "Queue messages put back for redelivery (NACK, consumer gone).", func(sc *scrape) float64 { return float64(sc.Counters.Redeliveries) }},
	{"dead_lettered_total", counter, "Queue messages moved to the dead-letter queue after too many deliveries.", func(sc *scrape) float64 { return float64(sc.Counters.DeadLettered) }},
	{"expired_total", counter, "Messages dropped because their TTL or expires time had passed.", func(sc *scrape) float64 { return float64(sc.Counters.Expired) }},
	{"retained_messages", gauge, "Topic messages retained for late subscribers (TTL stale queue) now.", func(sc *scrape) float64 { return float64(sc.Retained) }},
	{"stale_dropped_total", counter, "Retained topic messages dropped because the stale queue was full.", func(sc *scrape) float64 { return float64(sc.Counters.StaleDropped) }},

	{"input_paused", gauge, "1 while publishers are paused (max_input_queue_size or the memory budget reached), else 0.", func(sc *scrape) float64 { return boolGauge(sc.InputPaused) }},
	{"input_pauses_total", counter, "Times publishers were paused because queues were full.", func(sc *scrape) float64 { return float64(sc.InputPauses) }},
	{"queued_bytes", gauge, "Bytes of messages waiting in queues (bounded by the memory budget).", func(sc *scrape) float64 { return float64(sc.QueuedBytes) }},
	{"transaction_bytes", gauge, "Bytes held by open transactions now (counted in the memory budget).", func(sc *scrape) float64 { return float64(sc.TxBytes) }},
	{"output_pauses_total", counter, "Times the broker stopped reading from a client whose pending output was over max-pending-bytes.", func(sc *scrape) float64 { return float64(sc.Counters.OutputPauses) }},
	{"output_paused_connections", gauge, "Connections not read now because their pending output is over max-pending-bytes.", func(sc *scrape) float64 { return float64(sc.OutputPaused) }},
	{"flow_pauses_total", counter, "Times the broker stopped reading from a publisher because a queue it sends to was over queue-flow-limit with its consumers behind.", func(sc *scrape) float64 { return float64(sc.FlowPauses) }},
	{"flow_paused_connections", gauge, "Publishers not read now because a queue they send to is over queue-flow-limit.", func(sc *scrape) float64 { return float64(sc.FlowPaused) }},
	{"queued_messages", gauge, "Messages waiting in queues now (all queues).", func(sc *scrape) float64 { return float64(sc.Queued) }},
}

// labelledMetric is a metric with one label, named "stompica_"+name:
// series sends each of its series to emit.
type labelledMetric struct {
	name   string
	typ    prometheus.ValueType
	help   string
	label  string
	series func(sc *scrape, emit func(v float64, labelValue string))
}

// labelledMetrics are the broker's metrics with a label. There are no
// per-topic series: topics are often per user or per entity, and one series
// each would swamp Prometheus. The console lists them.
var labelledMetrics = []labelledMetric{
	{"info", gauge, "Always 1; the version label is the broker's version.", "version", func(_ *scrape, emit func(float64, string)) { emit(1, Version) }},
	{"connections", gauge, "Client connections open now (HTTP requests other than WebSocket upgrades excluded).", "transport",
		perTransport(func(sc *scrape) (int, int) { return sc.TCP, sc.WS })},
	{"connections_total", counter, "Client connections accepted.", "transport", perTransport(func(sc *scrape) (uint64, uint64) {
		c := &sc.Counters
		return c.Connections - min(c.WSConnections, c.Connections), c.WSConnections
	})},
	{"pending_bytes", gauge, "Bytes queued for writing to clients now.", "transport",
		perTransport(func(sc *scrape) (int, int) { return sc.TCPPending, sc.WSPending })},
	{"errors_total", counter, "ERROR frames sent to clients for their mistakes, by kind.", "kind", func(sc *scrape, emit func(float64, string)) {
		for k, n := range sc.Errors {
			emit(float64(n), errorKinds[k])
		}
	}},
	{"queue_depth", gauge, "Messages waiting in the queue now.", "queue", perQueue(func(q *queueInfo) int { return q.Depth })},
	{"queue_consumers", gauge, "Consumers subscribed to the queue now.", "queue", perQueue(func(q *queueInfo) int { return q.Consumers })},
	{"queue_unacked", gauge, "Messages of the queue delivered to consumers and not yet acknowledged (in flight) now.", "queue", perQueue(func(q *queueInfo) int { return q.Unacked })},
	{"queue_enqueued_total", counter, "Messages ever put on the queue.", "queue", perQueue(func(q *queueInfo) uint64 { return q.Enqueued })},
	{"queue_delivered_total", counter, "Messages handed to the queue's consumers (redeliveries included).", "queue", perQueue(func(q *queueInfo) uint64 { return q.Delivered })},
	{"queue_redelivered_total", counter, "Messages of the queue put back for redelivery (NACK, consumer gone).", "queue", perQueue(func(q *queueInfo) uint64 { return q.Redelivered })},
}

// perTransport is the series of a metric labelled by transport: tcp and ws.
func perTransport[N int | uint64](v func(*scrape) (tcp, ws N)) func(*scrape, func(float64, string)) {
	return func(sc *scrape, emit func(float64, string)) {
		tcp, ws := v(sc)
		emit(float64(tcp), "tcp")
		emit(float64(ws), "ws")
	}
}

// perQueue is the series of a metric labelled by queue: one per queue.
func perQueue[N int | uint64](v func(*queueInfo) N) func(*scrape, func(float64, string)) {
	return func(sc *scrape, emit func(float64, string)) {
		for i := range sc.Queues {
			emit(float64(v(&sc.Queues[i])), sc.Queues[i].Name)
		}
	}
}

// boolGauge is 1 for true, 0 for false.
func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
