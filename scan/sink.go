package scan

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"strings"
)

// Sink stores records. Write is called from one goroutine at a time;
// Stored may be called concurrently with Write.
type Sink interface {
	// Write stores a batch of records, atomically where the store allows.
	Write(ctx context.Context, recs []Record) error
	// Stored reports which of keys already have a record (for --resume).
	// A key DomainKey(d) is stored when some record has Domain d.
	Stored(ctx context.Context, keys []string) (map[string]bool, error)
	Close() error
}

// Open opens the sink named by spec:
//
//	jsonl:FILE, jsonl:- or -   JSON lines (to stdout for -)
//	sqlite:FILE                an SQLite database (created if missing)
//	postgres://... postgresql://...   a PostgreSQL database (a libpq URL)
//
// With resume, existing results are kept and reported by Stored; without,
// a JSON-lines file is truncated and database rows are replaced as
// targets are scanned again.
func Open(ctx context.Context, spec string, stdout io.Writer, resume bool) (Sink, error) {
	switch {
	case spec == "-" || spec == "jsonl:-":
		if resume {
			return nil, errors.New("--resume needs a sink that can be read back, not stdout")
		}
		return NewJSONL(nopCloser{stdout}, nil), nil
	case strings.HasPrefix(spec, "jsonl:"):
		return OpenJSONL(strings.TrimPrefix(spec, "jsonl:"), resume)
	case strings.HasPrefix(spec, "sqlite:"):
		return OpenSQLite(ctx, strings.TrimPrefix(spec, "sqlite:"))
	case strings.HasPrefix(spec, "postgres://"), strings.HasPrefix(spec, "postgresql://"):
		return OpenPostgres(ctx, spec)
	}
	return nil, fmt.Errorf("--out %q: want jsonl:FILE, -, sqlite:FILE or a postgres:// URL", spec)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// JSONL writes one JSON record a line.
type JSONL struct {
	w    *bufio.Writer
	c    io.Closer
	done map[uint64]bool // key hashes of records already in the file (resume)
}

// NewJSONL writes to w; done holds the hashes of stored keys, may be nil.
func NewJSONL(w io.WriteCloser, done map[uint64]bool) *JSONL {
	return &JSONL{w: bufio.NewWriterSize(w, 64<<10), c: w, done: done}
}

// OpenJSONL opens path; with resume it appends and first reads the keys
// already there (8 bytes of memory per stored record; with a domain, its
// DomainKey too), else it truncates.
func OpenJSONL(path string, resume bool) (*JSONL, error) {
	if !resume {
		f, err := os.Create(path)
		if err != nil {
			return nil, err
		}
		return NewJSONL(f, nil), nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	done := map[uint64]bool{}
	r := bufio.NewReaderSize(f, 256<<10)
	var last byte = '\n'
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			last = line[len(line)-1]
			var rec struct {
				Target string `json:"target"`
				Domain string `json:"domain"`
			}
			if json.Unmarshal(line, &rec) == nil && rec.Target != "" {
				done[hashKey(rec.Target)] = true
				if rec.Domain != "" { // an MX scan's record: its domain is done too
					done[hashKey(DomainKey(rec.Domain))] = true
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			f.Close()
			return nil, err
		}
	}
	s := NewJSONL(f, done)
	if last != '\n' { // a record cut short by a crash: end its line
		_ = s.w.WriteByte('\n')
	}
	return s, nil
}

func hashKey(k string) uint64 {
	h := fnv.New64a()
	_, _ = io.WriteString(h, k)
	return h.Sum64()
}

// Write appends the records and flushes.
func (s *JSONL) Write(_ context.Context, recs []Record) error {
	enc := json.NewEncoder(s.w)
	enc.SetEscapeHTML(false)
	for i := range recs {
		if err := enc.Encode(&recs[i]); err != nil {
			return err
		}
	}
	return s.w.Flush()
}

// Stored looks the keys up among the records found at open.
func (s *JSONL) Stored(_ context.Context, keys []string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, k := range keys {
		if s.done[hashKey(k)] {
			out[k] = true
		}
	}
	return out, nil
}

// Close flushes and closes the file.
func (s *JSONL) Close() error {
	err := s.w.Flush()
	if cerr := s.c.Close(); err == nil {
		err = cerr
	}
	return err
}
