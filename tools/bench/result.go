package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Result is one measure: ours against its anchor. A measure whose anchor is a goal (a
// latency or memory bound) has Anchor = the goal and Ratio = ours / goal.
type Result struct {
	Name   string  `json:"name"`
	Ours   Summary `json:"ours"`
	Anchor Summary `json:"anchor"`
	// Ratio is the median of the per-repetition ratios (ours_i / anchor_i of the same
	// interleaved round), or for a difference measure (Diff) the median of the
	// differences. Per-round ratios are what cancel drift between rounds.
	Ratio Summary `json:"ratio"`
	Diff  bool    `json:"diff,omitempty"`
	Unit  string  `json:"unit"`
	Goal  string  `json:"goal"`
	// Met is nil when the measure has no pass/fail goal.
	Met  *bool  `json:"met,omitempty"`
	Note string `json:"note,omitempty"`
	// Skipped says why the measure did not run (a missing anchor binary, say).
	Skipped string `json:"skipped,omitempty"`
}

// Line is the one-line form the bench ends with:
// "bench <name>: ours=<x> anchor=<y> ratio=<r>".
func (r Result) Line() string {
	if r.Skipped != "" {
		return fmt.Sprintf("bench %s: skipped (%s)", r.Name, r.Skipped)
	}
	key := "ratio"
	if r.Diff {
		key = "diff"
	}
	return fmt.Sprintf("bench %s: ours=%s anchor=%s %s=%s", r.Name, num(r.Ours.Median), num(r.Anchor.Median), key, num(r.Ratio.Median))
}

// num formats a figure with three significant digits, plainly (no exponent).
func num(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	a := math.Abs(v)
	switch {
	case a == 0:
		return "0"
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
}

// ratios divides ours by anchor round by round.
func ratios(ours, anchor []float64) []float64 {
	n := min(len(ours), len(anchor))
	out := make([]float64, 0, n)
	for i := range n {
		if anchor[i] != 0 {
			out = append(out, ours[i]/anchor[i])
		}
	}
	return out
}

func diffs(ours, anchor []float64) []float64 {
	n := min(len(ours), len(anchor))
	out := make([]float64, 0, n)
	for i := range n {
		out = append(out, ours[i]-anchor[i])
	}
	return out
}

// Markdown is the table docs/benchmarks.md shows: measure, goal, result with spread.
func Markdown(results []Result) string {
	var b strings.Builder
	b.WriteString("| measure | goal | ours | anchor | ratio | met |\n|---|---|---|---|---|---|\n")
	for _, r := range results {
		if r.Skipped != "" {
			fmt.Fprintf(&b, "| %s | %s | skipped: %s | | | |\n", r.Name, r.Goal, r.Skipped)
			continue
		}
		met := ""
		if r.Met != nil {
			met = map[bool]string{true: "yes", false: "no"}[*r.Met]
		}
		unit := ""
		if r.Unit != "" {
			unit = " " + r.Unit
		}
		ratio := spread(r.Ratio)
		if r.Diff {
			ratio = "difference " + ratio + unit
		}
		fmt.Fprintf(&b, "| %s | %s | %s%s | %s%s | %s | %s |\n", r.Name, r.Goal,
			spread(r.Ours), unit, spread(r.Anchor), unit, ratio, met)
	}
	first := true
	for _, r := range results {
		if r.Note != "" && r.Skipped == "" {
			if first {
				b.WriteString("\n")
				first = false
			}
			fmt.Fprintf(&b, "- `%s`: %s\n", r.Name, r.Note)
		}
	}
	return b.String()
}

func spread(s Summary) string {
	if len(s.Values) <= 1 {
		return num(s.Median)
	}
	return num(s.Median) + " (" + num(s.Min) + "–" + num(s.Max) + ")"
}

// Report is everything a run writes to BENCH_OUT.
type Report struct {
	Machine  Machine        `json:"machine"`
	Settings map[string]any `json:"settings"`
	Results  []Result       `json:"results"`
	Sweep    []SweepPoint   `json:"sweep,omitempty"`
	Drains   []DrainRun     `json:"drains,omitempty"`
	// PeakRSS is VmHWM in MB by phase ("load": after the fixed-concurrency phases and the
	// drains; "open-loop": after the end-to-end run) and app.
	PeakRSS map[string]map[string]float64 `json:"peak_rss_mb,omitempty"`
	Seconds float64                       `json:"seconds"`
}

// write saves results.txt (the bench lines), results.json (everything) and results.md
// (the table and the machine, ready for docs/benchmarks.md) into dir.
func (rep Report) write(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	var lines strings.Builder
	for _, r := range rep.Results {
		lines.WriteString(r.Line() + "\n")
	}
	raw, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	md := "Machine: " + rep.Machine.String() + "\n\n" + Markdown(rep.Results)
	for name, content := range map[string][]byte{
		"results.txt": []byte(lines.String()), "results.json": append(raw, '\n'), "results.md": []byte(md),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
			return err
		}
	}
	return nil
}
