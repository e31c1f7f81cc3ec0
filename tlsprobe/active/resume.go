package active

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/starttls-go/starttls/tlsprobe"
)

// Resumption is what the resumption probes learned; a nil field was not
// measured (the handshake it needed failed).
type Resumption struct {
	SessionIDIssued *bool   // a full handshake's ServerHello carried a session id
	ResumedByID     *bool   // offering it gave an abbreviated handshake
	TicketIssued    *bool   // with session_ticket offered, a NewSessionTicket came
	ResumedByTicket *bool   // offering the ticket gave an abbreviated handshake
	TicketLifetimeS *uint32 // the ticket's lifetime hint
	Errors          []string
}

// ProbeResumption measures TLS 1.2 session resumption with the minimal
// client: a full handshake without and one with the session_ticket
// extension (concurrently), then one resumption of each. Four connections
// in two rounds. It fails only when neither full handshake completes.
func ProbeResumption(ctx context.Context, dial tlsprobe.Dialer, o tlsprobe.Options) (*Resumption, error) {
	o = o.WithDefaults()
	res := &Resumption{}
	handshake := func(cfg Config12) (*Session12, error) {
		ctx, cancel := context.WithTimeout(ctx, o.Timeout)
		defer cancel()
		conn, err := dial(ctx)
		if err != nil {
			return nil, fmt.Errorf("dial: %w", err)
		}
		cfg.ServerName = o.ServerName
		c, err := Handshake12(ctx, conn, cfg)
		if err != nil {
			conn.Close()
			return nil, err
		}
		_ = c.CloseNotify()
		return c.Session, nil
	}
	var byID, byTicket *Session12
	var errID, errTicket error
	var g errgroup.Group
	g.Go(func() error { byID, errID = handshake(Config12{}); return nil })
	g.Go(func() error { byTicket, errTicket = handshake(Config12{Tickets: true}); return nil })
	_ = g.Wait()
	if errID != nil && errTicket != nil {
		return res, errors.Join(errID, errTicket)
	}
	var mu sync.Mutex
	fail := func(what string, err error) {
		mu.Lock()
		defer mu.Unlock()
		res.Errors = append(res.Errors, fmt.Sprintf("%s: %v", what, err))
	}
	if errID != nil {
		fail("session id", errID)
	} else {
		res.SessionIDIssued = boolPtr(len(byID.SessionID) > 0)
		if len(byID.SessionID) == 0 {
			res.ResumedByID = boolPtr(false)
		} else {
			g.Go(func() error {
				if s, err := handshake(Config12{Resume: byID}); err != nil {
					fail("session id resumption", err)
				} else {
					res.ResumedByID = boolPtr(s.Resumed)
				}
				return nil
			})
		}
	}
	if errTicket != nil {
		fail("session ticket", errTicket)
	} else {
		res.TicketIssued = boolPtr(byTicket.TicketIssued && len(byTicket.Ticket) > 0)
		if !*res.TicketIssued {
			res.ResumedByTicket = boolPtr(false)
		} else {
			life := byTicket.TicketLifetime
			res.TicketLifetimeS = &life
			g.Go(func() error {
				if s, err := handshake(Config12{Tickets: true, Resume: byTicket}); err != nil {
					fail("ticket resumption", err)
				} else {
					res.ResumedByTicket = boolPtr(s.Resumed)
				}
				return nil
			})
		}
	}
	_ = g.Wait()
	return res, nil
}

func boolPtr(b bool) *bool { return &b }
