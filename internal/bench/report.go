package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
)

// Result is the outcome of one run.
type Result interface {
	// Rows returns the result as label, value pairs for a human table.
	Rows() [][2]string
	// LimitHit says which limit the run hit, or "" when it hit none.
	LimitHit() string
}

// WriteTable writes r as a two-column table under a title line.
func WriteTable(w io.Writer, title string, r Result) error {
	if _, err := fmt.Fprintf(w, "%s\n", title); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, row := range r.Rows() {
		fmt.Fprintf(tw, "  %s\t%s\n", row[0], row[1])
	}
	return tw.Flush()
}

// WriteJSON writes r as one JSON line.
func WriteJSON(w io.Writer, r Result) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("bench: encode result: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func latencyRow(name string, l Latency) [2]string {
	return [2]string{name, fmt.Sprintf("p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f ms  (%d samples)",
		l.P50, l.P90, l.P99, l.P999, l.Max, l.Count)}
}

func limitRow(limit string) [2]string {
	if limit == "" {
		return [2]string{"limits", "none hit"}
	}
	return [2]string{"LIMIT HIT", limit + " (figures above are not valid for the size asked)"}
}
