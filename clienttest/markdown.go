package clienttest

import (
	"fmt"
	"io"
	"strings"
)

// Markdown writes the report as a table suitable for docs/.
func (r *Report) Markdown(w io.Writer) {
	fmt.Fprintf(w, "### %s — `%s`\n\n", r.Protocol, r.Client)
	if r.Version != "" {
		fmt.Fprintf(w, "Version: %s\n\n", r.Version)
	}
	if !r.Counts {
		fmt.Fprintf(w, "The control scenario failed: this client never worked with an honest server, so the rows below are no compatibility result; a leak they show is still a leak.\n\n")
	}
	fmt.Fprintf(w, "| scenario | verdict | evidence |\n|---|---|---|\n")
	for _, res := range r.Results {
		ev := strings.ReplaceAll(res.Evidence, "|", "\\|")
		if len(ev) > 160 {
			ev = ev[:157] + "..."
		}
		fmt.Fprintf(w, "| %s | %s | %s |\n", res.Scenario.Name, res.Verdict, ev)
	}
	fmt.Fprintln(w)
}
