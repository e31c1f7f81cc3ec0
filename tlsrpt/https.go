package tlsrpt

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"time"
)

// HTTPHandler takes reports POSTed to a rua=https: URL (RFC 8460 §5.4):
// Content-Type application/tlsrpt+gzip or application/tlsrpt+json, the
// body the report itself. Answers: 201 stored, 200 already stored, 400
// malformed (quarantined), 405, 413, 415, 429, 503 storage failure; each
// with a small JSON body.
func HTTPHandler(c *Collector, lim Limits) http.Handler {
	lm := newLimiter(lim)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answer := func(code int, v any) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			_ = json.NewEncoder(w).Encode(v)
		}
		fail := func(code int, msg string) { answer(code, map[string]string{"error": msg}) }
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		release, ok := lm.acquire(host)
		if !ok {
			w.Header().Set("Retry-After", "60")
			fail(http.StatusTooManyRequests, "too many requests from your address")
			return
		}
		defer release()
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			fail(http.StatusMethodNotAllowed, "POST a TLS-RPT report")
			return
		}
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || (mt != "application/tlsrpt+gzip" && mt != "application/tlsrpt+json") {
			fail(http.StatusUnsupportedMediaType, "Content-Type must be application/tlsrpt+gzip or application/tlsrpt+json")
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxReportBytes))
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			fail(http.StatusRequestEntityTooLarge, "report too large")
			return
		}
		if err != nil {
			fail(http.StatusBadRequest, "reading the body: "+err.Error())
			return
		}
		src := Source{Kind: "https", Remote: r.RemoteAddr, Detail: mt}
		if r.TLS != nil {
			src.Detail += " " + tls.VersionName(r.TLS.Version)
		}
		o, err := c.IngestPayload(r.Context(), body, src)
		switch {
		case err != nil:
			fail(http.StatusServiceUnavailable, "temporary storage failure, try again later")
		case o.Quarantined:
			answer(http.StatusBadRequest, o)
		case o.Duplicate:
			answer(http.StatusOK, o)
		default:
			answer(http.StatusCreated, o)
		}
	})
}

// ServeHTTPS serves h over TLS on l until ctx ends, with timeouts that a
// slow or stalled client cannot stretch.
func ServeHTTPS(ctx context.Context, l net.Listener, tc *tls.Config, h http.Handler) error {
	mux := http.NewServeMux()
	mux.Handle("/", h)
	srv := &http.Server{Handler: mux, TLSConfig: tc, ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 60 * time.Second, WriteTimeout: 60 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 16 << 10}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	defer stop()
	err := srv.ServeTLS(l, "", "")
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
