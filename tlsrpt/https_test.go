package tlsrpt

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/starttls-go/starttls/tlsrpt/tlsrpttest"
)

func TestHTTPS(t *testing.T) {
	pki := newTestPKI(t)
	st := newSQLite(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ServeHTTPS(ctx, l, pki.server, HTTPHandler(&Collector{Store: st}, Limits{PerMinute: 60, Burst: 8}))
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: pki.client}}
	url := "https://" + l.Addr().String() + "/tlsrpt"
	js := allTypesReport("sender.test", "h-1").JSON()
	post := func(method, ctype string, body []byte) (int, Outcome) {
		t.Helper()
		req, _ := http.NewRequest(method, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var o Outcome
		_ = json.NewDecoder(resp.Body).Decode(&o)
		return resp.StatusCode, o
	}
	if code, o := post("POST", "application/tlsrpt+gzip", tlsrpttest.Gzip(js)); code != 201 || !o.Stored || o.ReportID != "h-1" {
		t.Errorf("gzip: %d %+v", code, o)
	}
	if code, o := post("POST", "application/tlsrpt+json", js); code != 200 || !o.Duplicate {
		t.Errorf("again: %d %+v", code, o)
	}
	if code, o := post("POST", "application/tlsrpt+json", []byte(`{"policies": "x"}`)); code != 400 || !o.Quarantined || o.Reason == "" {
		t.Errorf("bad: %d %+v", code, o)
	}
	if code, _ := post("POST", "text/plain", js); code != 415 {
		t.Errorf("text/plain: %d", code)
	}
	if code, _ := post("GET", "application/tlsrpt+json", nil); code != 405 {
		t.Errorf("GET: %d", code)
	}
	if code, _ := post("POST", "application/tlsrpt+json", make([]byte, MaxReportBytes+10)); code != 413 {
		t.Errorf("huge: %d", code)
	}
	// The burst of 8 is spent: the next requests are refused.
	var limited bool
	for i := 0; i < 5 && !limited; i++ {
		code, _ := post("POST", "application/tlsrpt+json", js)
		limited = code == 429
	}
	if !limited {
		t.Error("no 429 past the burst")
	}
	n, err := st.Count(context.Background())
	if err != nil || n.Reports != 1 || n.Quarantined != 1 {
		t.Errorf("counts %+v %v", n, err)
	}
}
