package tlsrpt

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/starttls-go/starttls/tlsrpt/tlsrpttest"
)

func TestWebhook(t *testing.T) {
	var got []map[string]any
	status := http.StatusNoContent
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&body) != nil {
			t.Errorf("bad webhook request %s %s", r.Method, r.Header.Get("Content-Type"))
		}
		got = append(got, body)
		w.WriteHeader(status)
	}))
	defer hook.Close()
	s := newSQLite(t)
	ctx := context.Background()
	a := &Alerter{WebhookURL: hook.URL, FailureRate: 0.5}
	c := &Collector{Store: s, Alerts: a}
	// Under the threshold, one new failure type that is not a policy error.
	quiet := tlsrpttest.Report{Org: "a.test", ReportID: "1", Start: day, Domain: "example.org", PolicyType: "sts", Successful: 100,
		Failures: []tlsrpttest.Failure{{ResultType: "certificate-expired", Sessions: 1}}}
	if _, err := c.IngestPayload(ctx, quiet.JSON(), Source{}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0]["schema"] != AlertSchema {
		t.Fatalf("webhook calls %v", got)
	}
	alerts := got[0]["alerts"].([]any)
	if len(alerts) != 1 || alerts[0].(map[string]any)["kind"] != AlertNewFailureType {
		t.Errorf("alerts %v", alerts)
	}
	// The same type again from another sender: not new, no call.
	quiet.Org, quiet.ReportID = "b.test", "2"
	if _, err := c.IngestPayload(ctx, quiet.JSON(), Source{}); err != nil || len(got) != 1 {
		t.Fatalf("second: %v, %d calls", err, len(got))
	}
	// A failing webhook is an error of Check, not of the ingestion.
	status = http.StatusInternalServerError
	loud := tlsrpttest.Report{Org: "c.test", ReportID: "3", Start: day, Domain: "example.org", PolicyType: "sts", Successful: 1,
		Failures: []tlsrpttest.Failure{{ResultType: "sts-policy-fetch-error", Sessions: 30}}}
	rep, _, err := Decode(loud.JSON())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Check(ctx, s, rep); err == nil || !strings.Contains(err.Error(), "500") {
		t.Errorf("want the webhook's 500, got %v", err)
	}
	kinds := map[any]bool{}
	for _, x := range got[1]["alerts"].([]any) {
		kinds[x.(map[string]any)["kind"]] = true
	}
	if len(got) != 2 || !kinds[AlertFailureRate] || !kinds[AlertPolicyError] || !kinds[AlertNewFailureType] {
		t.Errorf("kinds %v", kinds)
	}
}
