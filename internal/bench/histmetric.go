package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// opHist is the server's tether_command_duration_seconds histogram of one
// op: cumulative counts by upper bound (seconds).
type opHist map[float64]float64

// scrapeOpHist reads the command latency histogram of op from the target's
// metrics.
func (t Target) scrapeOpHist(ctx context.Context, hc *http.Client, op string) (opHist, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.Metrics, nil)
	if err != nil {
		return nil, fmt.Errorf("bench: metrics: %w", err)
	}
	if t.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+t.APIKey)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("bench: scrape %s: %w", t.Metrics, err)
	}
	defer resp.Body.Close()
	prefix := `tether_command_duration_seconds_bucket{op="` + op + `",le="`
	h := opHist{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), prefix)
		if !ok {
			continue
		}
		le, rest, ok := strings.Cut(line, `"} `)
		if !ok {
			continue
		}
		bound, err1 := strconv.ParseFloat(le, 64)
		n, err2 := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err1 == nil && err2 == nil {
			h[bound] = n
		}
	}
	return h, sc.Err()
}

// within returns the share of the observations between before and h that
// took at most bound seconds, and how many there were.
func (h opHist) within(before opHist, bound float64) (share, count float64) {
	inf := h[posInf] - before[posInf]
	if inf <= 0 {
		return 0, 0
	}
	return (h[bound] - before[bound]) / inf, inf
}

var posInf, _ = strconv.ParseFloat("+Inf", 64)
