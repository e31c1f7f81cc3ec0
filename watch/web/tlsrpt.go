package web

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// TLSRPTTable sums one tlsrpt_* table's rows for a domain. The TLS-RPT
// collector owns those tables; the dashboard reads them only when they
// exist in the same database, and only columns it recognises by name.
type TLSRPTTable struct {
	Table     string
	Rows      int64
	Successes int64
	Failures  int64
	HasCounts bool
}

// TLSRPTSummary reads the tlsrpt_* tables that have a policy_domain (or
// domain) column. No such table is no error: the list is empty.
func TLSRPTSummary(ctx context.Context, db *sql.DB, dialect, domain string) ([]TLSRPTTable, error) {
	q := `SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'tlsrpt\_%' ESCAPE '\' ORDER BY name`
	if dialect == "postgres" {
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_name LIKE 'tlsrpt\_%' ORDER BY table_name`
	}
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, err
		}
		tables = append(tables, n)
	}
	rows.Close()
	var out []TLSRPTTable
	for _, t := range tables {
		if !identifier(t) {
			continue
		}
		cols, err := columns(ctx, db, t)
		if err != nil {
			continue
		}
		col, succ, fail := "", "", ""
		for _, c := range cols {
			lc := strings.ToLower(c)
			switch {
			case lc == "policy_domain" || (lc == "domain" && col == ""):
				col = c
			case strings.HasSuffix(lc, "successful_session_count") && identifier(c):
				succ = c
			case strings.HasSuffix(lc, "failure_session_count") && identifier(c):
				fail = c
			}
		}
		if col == "" {
			continue
		}
		sum := TLSRPTTable{Table: t, HasCounts: succ != "" && fail != ""}
		sel := "count(*), 0, 0"
		if sum.HasCounts {
			sel = fmt.Sprintf("count(*), COALESCE(SUM(%s), 0), COALESCE(SUM(%s), 0)", succ, fail)
		}
		ph := "?"
		if dialect == "postgres" {
			ph = "$1"
		}
		if err := db.QueryRowContext(ctx, fmt.Sprintf("SELECT %s FROM %s WHERE %s = %s", sel, t, col, ph), domain).
			Scan(&sum.Rows, &sum.Successes, &sum.Failures); err != nil {
			continue
		}
		out = append(out, sum)
	}
	return out, nil
}

// identifier accepts names that need no quoting, so that a table or
// column name can be put into a query.
func identifier(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func columns(ctx context.Context, db *sql.DB, table string) ([]string, error) {
	rows, err := db.QueryContext(ctx, "SELECT * FROM "+table+" WHERE 1 = 0")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return rows.Columns()
}
