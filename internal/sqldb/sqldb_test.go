package sqldb

import "testing"

func TestRebind(t *testing.T) {
	for in, want := range map[string]string{
		"SELECT 1":                           "SELECT 1",
		"INSERT INTO t VALUES (?, ?, ?)":     "INSERT INTO t VALUES ($1, $2, $3)",
		"UPDATE t SET a=? WHERE b=? AND c=?": "UPDATE t SET a=$1 WHERE b=$2 AND c=$3",
		"":                                   "",
	} {
		if got := Rebind(in); got != want {
			t.Errorf("Rebind(%q) = %q, want %q", in, got, want)
		}
	}
}
