package main

import (
	"errors"
	"flag"
	"log/slog"
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
}

func durabilityFlags(fs *flag.FlagSet, cfg *config) {
	d := &cfg.durability
	fs.DurationVar(&cfg.opts.AckTimeout, "ack-timeout", 0, "redeliver a queue message a client-ack consumer has not acknowledged in this time, to another consumer (0 = off)")
	fs.StringVar(&d.dataDir, "data-dir", "", "keep queue messages on disk in this directory (an embedded NATS JetStream); empty = in memory only")
	fs.StringVar(&d.natsURL, "nats", "", "keep queue messages in this external NATS server's JetStream instead of --data-dir (nats://host:port)")
	fs.StringVar(&d.fsync, "fsync", "interval", "with --data-dir, when messages are forced to disk: 'always' (before each RECEIPT) or 'interval' (every --fsync-interval)")
	fs.DurationVar(&d.syncInterval, "fsync-interval", jetstream.DefaultSyncInterval, "with --fsync interval, how often written messages are forced to disk (0 = default)")
	fs.DurationVar(&d.dedupWindow, "dedup-window", jetstream.DefaultDedupWindow, "with --data-dir or --nats, a SEND whose x-dedup-id repeats one seen this recently (on the same queue) is receipted but stored once (0 = default)")
	fs.Int64Var(&d.storeMax, "store-max-bytes", 0, "with --data-dir or --nats, most bytes of stored queue messages; past it SENDs get an ERROR (0 = what the disk holds)")
}

// openStore opens the persistent store the flags ask for (none: the
// server's memory store).
func openStore(cfg *config, log *slog.Logger) error {
	d := cfg.durability
	if d.dataDir == "" && d.natsURL == "" {
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
		Dir:          d.dataDir,
		URL:          d.natsURL,
		Fsync:        fsync,
		SyncInterval: d.syncInterval,
		MaxBytes:     d.storeMax,
		DedupWindow:  d.dedupWindow,
		MaxMessage:   cfg.opts.MaxFrameSize,
		Logger:       log,
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
