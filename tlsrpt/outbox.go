package tlsrpt

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// ErrOutboxFull is returned by Outbox.Send when the queue is full: the
// routes have not kept up for a long while, and the alerts are dropped
// rather than held in memory without bound.
var ErrOutboxFull = errors.New("tlsrpt: alert queue full, alerts dropped")

// ErrOutboxClosed is returned by Outbox.Send after Close.
var ErrOutboxClosed = errors.New("tlsrpt: alert queue closed")

// Outbox sends alerts from one goroutine of its own, so that a slow or
// stalled route (a webhook that never answers, a mail relay that is
// down) never holds up the SMTP transaction or HTTPS request that
// delivered the report: the reporting MTA gets its answer once the
// report is stored. Alerts are sent in the order they were queued.
type Outbox struct {
	send    func(context.Context, []Alert) error
	log     *slog.Logger
	timeout time.Duration

	mu     sync.Mutex
	closed bool
	q      chan []Alert
	done   chan struct{}
}

// NewOutbox starts an outbox in front of send (RoutesSender) holding up
// to size reports' alerts (default 1000); each send gets timeout (default
// 90 s). A failed send is logged and not retried: the routes' own retries
// are watch's.
func NewOutbox(send func(context.Context, []Alert) error, size int, timeout time.Duration, log *slog.Logger) *Outbox {
	if size <= 0 {
		size = 1000
	}
	if timeout <= 0 {
		timeout = 90 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	o := &Outbox{send: send, log: log, timeout: timeout, q: make(chan []Alert, size), done: make(chan struct{})}
	go o.run()
	return o
}

func (o *Outbox) run() {
	defer close(o.done)
	for alerts := range o.q {
		ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
		if err := o.send(ctx, alerts); err != nil {
			o.log.Warn("tlsrpt alert", "err", err, "alerts", len(alerts), "report_id", alerts[0].ReportID)
		}
		cancel()
	}
}

// Send queues alerts and returns at once; it is an Alerter.Send. ctx is
// the ingesting request's and is not used for the sending, which
// outlives it.
func (o *Outbox) Send(_ context.Context, alerts []Alert) error {
	if len(alerts) == 0 {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return ErrOutboxClosed
	}
	select {
	case o.q <- alerts:
		return nil
	default:
		return ErrOutboxFull
	}
}

// Close stops taking alerts and waits until the queued ones are sent or
// ctx ends; it returns ctx's error in the second case (the rest is lost
// with the process).
func (o *Outbox) Close(ctx context.Context) error {
	o.mu.Lock()
	if !o.closed {
		o.closed = true
		close(o.q)
	}
	o.mu.Unlock()
	select {
	case <-o.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
