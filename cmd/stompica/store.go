package main

import (
	"errors"
	"flag"
	"log/slog"
	"strings"
	"time"

	"github.com/stompica/stompica/store/jetstream"
)

// durability is what the command line says about the store.
type durability struct {
	dataDir      string
	natsURL      string
	fsync        string
	syncInterval time.Duration
	storeMax     int64
	dedupWindow  time.Duration
	streamAge    time.Duration
	streamBytes  int64
	record       string
}

func durabilityFlags(fs *flag.FlagSet, cfg *config) {
	d := &cfg.durability
	fs.DurationVar(&cfg.opts.AckTimeout, "ack-timeout", 0, "redeliver a queue message a client-ack consumer has not acknowledged in this time, to another consumer (0 = off)")
	fs.StringVar(&d.dataDir, "data-dir", "", "keep queue messages on disk in this directory (an embedded NATS JetStream); empty = in memory only")
	fs.StringVar(&d.natsURL, "nats", "", "keep queue messages in this external NATS server's JetStream instead of --data-dir (nats://host:port)")
	fs.StringVar(&d.fsync, "fsync", "interval", "with --data-dir, when messages are forced to disk: 'always' (before each RECEIPT) or 'interval' (every --fsync-interval)")
	fs.DurationVar(&d.syncInterval, "fsync-interval", jetstream.DefaultSyncInterval, "with --fsync interval, how often written messages are forced to disk (0 = default)")
	fs.DurationVar(&d.dedupWindow, "dedup-window", jetstream.DefaultDedupWindow, "with --data-dir or --nats, a SEND whose x-dedup-id repeats one seen this recently (on the same queue) is receipted but stored once (0 = default)")
	fs.DurationVar(&d.streamAge, "stream-max-age", jetstream.DefaultStreamMaxAge, "with --data-dir or --nats, how long /stream/ and recorded topic messages are kept for replay (0 = default)")
	d.streamBytes = jetstream.DefaultStreamMaxBytes
	fs.Var(sizeValue[int64]{&d.streamBytes}, "stream-max-bytes", "with --data-dir or --nats, most `size` kept of /stream/ and recorded topic messages (the oldest go first; 0 = default)")
	fs.StringVar(&d.record, "record", "", "also keep these topic destinations for replay with x-stream-offset: comma-separated names or patterns such as /topic/prices.> (needs --data-dir or --nats)")
	fs.Int64Var(&d.storeMax, "store-max-bytes", 0, "with --data-dir or --nats, most bytes of stored queue messages; past it SENDs get an ERROR (0 = what the disk holds)")
}

// openStore opens the persistent store the flags ask for (none: the
// server's memory store).
func openStore(cfg *config, log *slog.Logger) error {
	d := cfg.durability
	for _, p := range strings.Split(d.record, ",") {
		if p = strings.TrimSpace(p); p != "" {
			cfg.opts.Record = append(cfg.opts.Record, p)
		}
	}
	if d.dataDir == "" && d.natsURL == "" {
		if len(cfg.opts.Record) > 0 {
			return errors.New("--record needs --data-dir or --nats")
		}
		return nil
	}
	if d.dataDir != "" && d.natsURL != "" {
		return errors.New("--data-dir and --nats exclude each other")
	}
	fsync, err := jetstream.ParseFsync(d.fsync)
	if err != nil {
		return err
	}
	st, err := jetstream.Open(jetstream.Options{
		Dir:            d.dataDir,
		URL:            d.natsURL,
		Fsync:          fsync,
		SyncInterval:   d.syncInterval,
		MaxBytes:       d.storeMax,
		DedupWindow:    d.dedupWindow,
		StreamMaxAge:   d.streamAge,
		StreamMaxBytes: d.streamBytes,
		MaxMessage:     cfg.opts.MaxFrameSize,
		Logger:         log,
	})
	if err != nil {
		return err
	}
	where := d.dataDir
	if where == "" {
		where = d.natsURL
	}
	log.Info("durable queues on JetStream", "store", where, "fsync", d.fsync)
	cfg.opts.Store = st
	return nil
}
