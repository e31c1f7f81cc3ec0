package mail

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// PolicyPath is where the policy lives on the policy host (RFC 8461 §3.3).
const PolicyPath = "/.well-known/mta-sts.txt"

// FetchOptions configure a policy fetch.
type FetchOptions struct {
	// Host is mta-sts.DOMAIN: the name in the URL, SNI and the certificate.
	Host string
	// Port is the HTTPS port; default 443.
	Port int
	// Addrs are the host's addresses, resolved by the caller through the
	// same resolver as everything else; connections go only there.
	Addrs []string
	// Roots verify the certificate; nil means the system pool.
	Roots *x509.CertPool
	// Timeout bounds the whole fetch; default 60 s (RFC 8461 §3.3 suggests a minute).
	Timeout time.Duration
}

// FetchError says which of the RFC's fetch rules failed.
type FetchError struct {
	Rule string // connect, certificate, status, redirect, content-type, size, timeout
	Err  error
}

func (e *FetchError) Error() string { return e.Rule + ": " + e.Err.Error() }
func (e *FetchError) Unwrap() error { return e.Err }

// PolicyURL returns the policy's URL for a host and port.
func PolicyURL(host string, port int) string {
	if port == 0 || port == 443 {
		return "https://" + host + PolicyPath
	}
	return "https://" + net.JoinHostPort(host, strconv.Itoa(port)) + PolicyPath
}

// FetchPolicy fetches the policy body as RFC 8461 §3.3 says: HTTPS with a
// certificate valid for the host, status 200 only, no redirects, no proxy,
// media type text/plain, at most 64 KiB, within the timeout.
func FetchPolicy(ctx context.Context, o FetchOptions) ([]byte, error) {
	if o.Port == 0 {
		o.Port = 443
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Minute
	}
	if len(o.Addrs) == 0 {
		return nil, &FetchError{"connect", fmt.Errorf("%s has no address", o.Host)}
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	dialer := &net.Dialer{Timeout: o.Timeout}
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var errs []error
			for _, a := range o.Addrs {
				c, err := dialer.DialContext(ctx, network, net.JoinHostPort(a, strconv.Itoa(o.Port)))
				if err == nil {
					return c, nil
				}
				errs = append(errs, err)
			}
			return nil, errors.Join(errs...)
		},
		TLSClientConfig:        &tls.Config{ServerName: o.Host, RootCAs: o.Roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    o.Timeout,
		ResponseHeaderTimeout:  o.Timeout,
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: 64 << 10,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, PolicyURL(o.Host, o.Port), nil)
	if err != nil {
		return nil, &FetchError{"connect", err}
	}
	req.Header.Set("User-Agent", "starttls-mail")
	resp, err := client.Do(req)
	if err != nil {
		return nil, classifyFetch(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return nil, &FetchError{"redirect", fmt.Errorf("HTTP %d to %q: redirects must not be followed", resp.StatusCode, resp.Header.Get("Location"))}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &FetchError{"status", fmt.Errorf("HTTP %d, want 200", resp.StatusCode)}
	}
	ct := resp.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "text/plain" {
		return nil, &FetchError{"content-type", fmt.Errorf("Content-Type %q, want text/plain", ct)}
	}
	if cs := strings.ToLower(params["charset"]); cs != "" && cs != "utf-8" && cs != "us-ascii" {
		return nil, &FetchError{"content-type", fmt.Errorf("charset %q, want utf-8 or us-ascii", cs)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxPolicySize+1))
	if err == nil && ctx.Err() != nil {
		// The deadline fired while the body was arriving, yet the read
		// ended with a clean EOF (on loopback about 1 in 7, when the server
		// finishes its chunked reply on seeing our close): what was read is
		// a prefix and must not pass for the whole policy.
		err = fmt.Errorf("body cut off: %w", ctx.Err())
	}
	if err != nil {
		return nil, classifyFetch(ctx, err)
	}
	if len(body) > MaxPolicySize {
		return nil, &FetchError{"size", fmt.Errorf("body larger than %d bytes", MaxPolicySize)}
	}
	return body, nil
}

func classifyFetch(ctx context.Context, err error) error {
	var ce *tls.CertificateVerificationError
	var he x509.HostnameError
	var ua x509.UnknownAuthorityError
	var ie x509.CertificateInvalidError
	switch {
	case errors.As(err, &ce), errors.As(err, &he), errors.As(err, &ua), errors.As(err, &ie):
		return &FetchError{"certificate", err}
	case ctx.Err() != nil:
		return &FetchError{"timeout", err}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &FetchError{"timeout", err}
	}
	return &FetchError{"connect", err}
}
