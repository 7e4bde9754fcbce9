package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsHandler serves /metrics from a registry of this Server only (tests
// and embedders run many servers in one process, so never the global
// default registry): the broker collector below plus Go runtime and process
// collectors.
func (s *Server) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		newBrokerCollector(s),
		newStoreCollector(s),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            promLogger{s},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
	})
}

type promLogger struct{ s *Server }

func (l promLogger) Println(v ...any) { l.s.log.Warn("metrics", "err", v) }

// brokerCollector reads the Server's atomic counters and gauges when
// scraped: nothing is recorded per message beyond the counters themselves.
type brokerCollector struct {
	s *Server

	info, startTime                                            *prometheus.Desc
	conns, connsTotal, refused                                 *prometheus.Desc
	connected, subscriptions, pendingBytes                     *prometheus.Desc
	framesIn, msgsIn, bytesIn, bytesOut, deliveries            *prometheus.Desc
	acks, nacks, redeliveries, deadLettered, expired           *prometheus.Desc
	retained, staleDropped, queued, slowConsumers, errorsTotal *prometheus.Desc
	queueDepth, queueConsumers, queueEnqueued, queueDelivered  *prometheus.Desc
	queueUnacked, queueRedelivered                             *prometheus.Desc
	inputPaused, inputPauses, queuedBytes                      *prometheus.Desc
	httpConns, maxConns                                        *prometheus.Desc
	txBytes, outputPauses, outputPaused                        *prometheus.Desc
}

func newBrokerCollector(s *Server) *brokerCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("stompica_"+name, help, labels, nil)
	}
	return &brokerCollector{
		s:                s,
		info:             d("info", "Always 1; the version label is the broker's version.", "version"),
		startTime:        d("start_time_seconds", "When the broker started, in seconds since the Unix epoch."),
		conns:            d("connections", "Client connections open now (HTTP requests other than WebSocket upgrades excluded).", "transport"),
		connsTotal:       d("connections_total", "Client connections accepted.", "transport"),
		httpConns:        d("http_connections", "HTTP connections open now (not upgraded to WebSocket; they count against the connection limit)."),
		maxConns:         d("max_connections", "The connection limit in force (max_connections, lowered to fit the open-file limit)."),
		refused:          d("refused_connections_total", "Connections refused (connection limit, shutting down)."),
		connected:        d("connected", "Connections past CONNECT (STOMP sessions) now."),
		subscriptions:    d("subscriptions", "Subscriptions now."),
		pendingBytes:     d("pending_bytes", "Bytes queued for writing to clients now.", "transport"),
		framesIn:         d("frames_in_total", "STOMP frames received from clients."),
		msgsIn:           d("messages_in_total", "Messages published (SEND frames routed, committed transactions included)."),
		bytesIn:          d("bytes_in_total", "Bytes read from clients (STOMP stream; WebSocket payloads)."),
		bytesOut:         d("bytes_out_total", "Bytes written to clients."),
		deliveries:       d("deliveries_total", "MESSAGE frames queued to subscribers (redeliveries included)."),
		acks:             d("acks_total", "Messages acknowledged by ACK frames."),
		nacks:            d("nacks_total", "Messages rejected by NACK frames."),
		redeliveries:     d("redeliveries_total", "Queue messages put back for redelivery (NACK, consumer gone)."),
		deadLettered:     d("dead_lettered_total", "Queue messages moved to the dead-letter queue after too many deliveries."),
		expired:          d("expired_total", "Messages dropped because their TTL or expires time had passed."),
		retained:         d("retained_messages", "Topic messages retained for late subscribers (TTL stale queue) now."),
		staleDropped:     d("stale_dropped_total", "Retained topic messages dropped because the stale queue was full."),
		queued:           d("queued_messages", "Messages waiting in queues now (all queues)."),
		slowConsumers:    d("slow_consumer_disconnects_total", "Connections closed as slow consumers."),
		inputPaused:      d("input_paused", "1 while publishers are paused (max_input_queue_size or the memory budget reached), else 0."),
		inputPauses:      d("input_pauses_total", "Times publishers were paused because queues were full."),
		queuedBytes:      d("queued_bytes", "Bytes of messages waiting in queues (bounded by the memory budget)."),
		txBytes:          d("transaction_bytes", "Bytes held by open transactions now (counted in the memory budget)."),
		outputPauses:     d("output_pauses_total", "Times the broker stopped reading from a client whose pending output was over max-pending-bytes."),
		outputPaused:     d("output_paused_connections", "Connections not read now because their pending output is over max-pending-bytes."),
		errorsTotal:      d("errors_total", "ERROR frames sent to clients for their mistakes, by kind.", "kind"),
		queueDepth:       d("queue_depth", "Messages waiting in the queue now.", "queue"),
		queueConsumers:   d("queue_consumers", "Consumers subscribed to the queue now.", "queue"),
		queueEnqueued:    d("queue_enqueued_total", "Messages ever put on the queue.", "queue"),
		queueDelivered:   d("queue_delivered_total", "Messages handed to the queue's consumers (redeliveries included).", "queue"),
		queueUnacked:     d("queue_unacked", "Messages of the queue delivered to consumers and not yet acknowledged (in flight) now.", "queue"),
		queueRedelivered: d("queue_redelivered_total", "Messages of the queue put back for redelivery (NACK, consumer gone).", "queue"),
	}
}

// Describe sends every descriptor (the collector is checked, not "unchecked").
func (bc *brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		bc.info, bc.startTime, bc.conns, bc.connsTotal, bc.refused, bc.connected, bc.subscriptions,
		bc.pendingBytes, bc.framesIn, bc.msgsIn, bc.bytesIn, bc.bytesOut, bc.deliveries, bc.acks,
		bc.nacks, bc.redeliveries, bc.deadLettered, bc.expired, bc.retained, bc.staleDropped,
		bc.queued, bc.slowConsumers, bc.errorsTotal, bc.queueDepth, bc.queueConsumers,
		bc.inputPaused, bc.inputPauses, bc.queuedBytes, bc.txBytes, bc.outputPauses, bc.outputPaused,
		bc.queueEnqueued, bc.queueDelivered, bc.queueUnacked, bc.queueRedelivered, bc.httpConns, bc.maxConns,
	} {
		ch <- d
	}
}

// Collect reads one snapshot (with the queues).
func (bc *brokerCollector) Collect(ch chan<- prometheus.Metric) {
	s := bc.s
	snap := s.snapshot(snapQueues)
	c := &snap.Counters
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}

	gauge(bc.info, 1, Version)
	gauge(bc.startTime, float64(snap.Start.UnixNano())/1e9)

	gauge(bc.conns, float64(snap.TCP), "tcp")
	gauge(bc.conns, float64(snap.WS), "ws")
	gauge(bc.pendingBytes, float64(snap.TCPPending), "tcp")
	gauge(bc.pendingBytes, float64(snap.WSPending), "ws")
	gauge(bc.httpConns, float64(snap.HTTP))
	gauge(bc.maxConns, float64(s.maxConns))
	counter(bc.connsTotal, c.Connections-min(c.WSConnections, c.Connections), "tcp")
	counter(bc.connsTotal, c.WSConnections, "ws")
	counter(bc.refused, c.Refused)
	gauge(bc.connected, float64(snap.Connected))
	gauge(bc.subscriptions, float64(snap.Subscriptions))

	counter(bc.framesIn, c.FramesIn)
	counter(bc.msgsIn, c.MessagesIn)
	counter(bc.bytesIn, c.BytesIn)
	counter(bc.bytesOut, c.BytesOut)
	counter(bc.deliveries, c.Deliveries)
	counter(bc.acks, c.Acks)
	counter(bc.nacks, c.Nacks)
	counter(bc.redeliveries, c.Redeliveries)
	counter(bc.deadLettered, c.DeadLettered)
	counter(bc.expired, c.Expired)
	counter(bc.staleDropped, c.StaleDropped)
	counter(bc.slowConsumers, c.SlowConsumers)
	counter(bc.inputPauses, snap.InputPauses)
	paused := 0.0
	if snap.InputPaused {
		paused = 1
	}
	gauge(bc.inputPaused, paused)
	gauge(bc.queuedBytes, float64(snap.QueuedBytes))
	gauge(bc.txBytes, float64(snap.TxBytes))
	counter(bc.outputPauses, c.OutputPauses)
	gauge(bc.outputPaused, float64(snap.OutputPaused))
	for i, n := range snap.Errors {
		counter(bc.errorsTotal, n, errorKinds[i])
	}
	gauge(bc.retained, float64(snap.Retained))

	for _, q := range snap.Queues {
		gauge(bc.queueDepth, float64(q.Depth), q.Name)
		gauge(bc.queueConsumers, float64(q.Consumers), q.Name)
		gauge(bc.queueUnacked, float64(q.Unacked), q.Name)
		counter(bc.queueEnqueued, q.Enqueued, q.Name)
		counter(bc.queueDelivered, q.Delivered, q.Name)
		counter(bc.queueRedelivered, q.Redelivered, q.Name)
	}
	gauge(bc.queued, float64(snap.Queued))
	// No per-topic series: topics are often per user or per entity, and
	// one series each would swamp Prometheus. The console lists them.
}
