package tlsrpt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Mailbox says where reports wait: the rua=mailto: address delivers into
// an ordinary mailbox that the collector empties over IMAP.
type Mailbox struct {
	// URL is imaps://user@host[:port]/MAILBOX (implicit TLS) or
	// imap://user@host[:port]/MAILBOX (STARTTLS, required). MAILBOX
	// defaults to INBOX.
	URL      string
	Password string
	// Processed and Quarantine are where handled messages go: stored
	// (or duplicate) reports, and everything else. Created when missing.
	// Defaults INBOX.processed and INBOX.quarantine.
	Processed, Quarantine string
	TLSConfig             *tls.Config
	// Max bounds the messages handled in one run (default 1000).
	Max int
}

// FetchStats counts what one run did.
type FetchStats struct {
	Messages    int `json:"messages"`
	Stored      int `json:"stored"`
	Duplicates  int `json:"duplicates"`
	Quarantined int `json:"quarantined"`
	NotReports  int `json:"not_reports"`
}

type mailboxURL struct {
	implicit  bool
	addr, box string
	user      string
}

func parseMailboxURL(s string) (mailboxURL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return mailboxURL{}, fmt.Errorf("mailbox URL: %w", err)
	}
	var m mailboxURL
	port := "143"
	switch u.Scheme {
	case "imaps":
		m.implicit, port = true, "993"
	case "imap":
	default:
		return m, fmt.Errorf("mailbox URL %q: want imaps:// or imap://", s)
	}
	if u.User == nil || u.User.Username() == "" {
		return m, fmt.Errorf("mailbox URL %q: no user (imaps://user@host/INBOX)", s)
	}
	if _, set := u.User.Password(); set {
		return m, errors.New("mailbox URL: put the password in a file or the environment, not in the URL")
	}
	m.user = u.User.Username()
	if u.Hostname() == "" {
		return m, fmt.Errorf("mailbox URL %q: no host", s)
	}
	if u.Port() != "" {
		port = u.Port()
	}
	m.addr = net.JoinHostPort(u.Hostname(), port)
	m.box = strings.TrimPrefix(u.Path, "/")
	if m.box == "" {
		m.box = "INBOX"
	}
	return m, nil
}

// Fetch handles every message in the mailbox once: reports are stored
// (idempotent by organization and report-id, so a run cut short is simply
// repeated) and the message moved to Processed; malformed reports are
// quarantined in the database and moved to Quarantine, as is mail that is
// not a report. A storage failure stops the run with the message left in
// place for the next one.
func (c *Collector) Fetch(ctx context.Context, mb Mailbox) (st FetchStats, err error) {
	defer func() {
		// A canceled run closes the connection; say why rather than "use of
		// closed network connection".
		if err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("imap %s: %w (%v)", mb.URL, ctx.Err(), err)
		}
	}()
	m, err := parseMailboxURL(mb.URL)
	if err != nil {
		return st, err
	}
	if mb.Processed == "" {
		mb.Processed = "INBOX.processed"
	}
	if mb.Quarantine == "" {
		mb.Quarantine = "INBOX.quarantine"
	}
	if mb.Max <= 0 {
		mb.Max = 1000
	}
	ic, err := dialIMAP(ctx, m.implicit, m.addr, mb.TLSConfig)
	if err != nil {
		return st, err
	}
	defer ic.logout()
	stop := context.AfterFunc(ctx, func() { ic.close() })
	defer stop()
	if err := ic.login(m.user, mb.Password); err != nil {
		return st, err
	}
	for _, box := range []string{mb.Processed, mb.Quarantine} {
		if err := ic.create(box); err != nil {
			return st, err
		}
	}
	if err := ic.selectBox(m.box); err != nil {
		return st, err
	}
	uids, err := ic.uidSearchAll()
	if err != nil {
		return st, err
	}
	for i, uid := range uids {
		if i >= mb.Max || ctx.Err() != nil {
			break
		}
		body, err := ic.fetch(uid)
		if err != nil {
			return st, err
		}
		st.Messages++
		src := Source{Kind: "imap", Remote: m.user + "@" + m.addr + "/" + m.box, Detail: "uid " + strconv.FormatUint(uint64(uid), 10)}
		outs, err := c.IngestMessage(ctx, body, src)
		dest := mb.Processed
		switch {
		case errors.Is(err, ErrNotReport):
			st.NotReports++
			dest = mb.Quarantine
		case err != nil:
			return st, err
		default:
			ok, bad, _ := Verdict(outs)
			st.Quarantined += bad
			for _, o := range outs {
				if o.Stored {
					st.Stored++
				} else if o.Duplicate {
					st.Duplicates++
				}
			}
			if ok == 0 {
				dest = mb.Quarantine
			}
		}
		if err := ic.move(uid, dest); err != nil {
			return st, err
		}
	}
	return st, nil
}

// AppendMessage puts msg into the mailbox of mb.URL: for tests and for
// re-queueing a message by hand.
func AppendMessage(ctx context.Context, mb Mailbox, msg []byte) error {
	m, err := parseMailboxURL(mb.URL)
	if err != nil {
		return err
	}
	ic, err := dialIMAP(ctx, m.implicit, m.addr, mb.TLSConfig)
	if err != nil {
		return err
	}
	defer ic.logout()
	if err := ic.login(m.user, mb.Password); err != nil {
		return err
	}
	return ic.appendMsg(m.box, msg)
}
