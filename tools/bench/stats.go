package bench

import (
	"fmt"
	"slices"
)

// Summary is the median and the spread (min–max) of one figure over repetitions.
type Summary struct {
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	Values []float64 `json:"values"`
}

// Summarize returns the median and spread of values; the median of an even count is
// the mean of the two middle values. No values gives the zero Summary.
func Summarize(values []float64) Summary {
	if len(values) == 0 {
		return Summary{}
	}
	s := slices.Clone(values)
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return Summary{Median: med, Min: s[0], Max: s[n-1], Values: slices.Clone(values)}
}

// String is "median (min–max)" with the given number format.
func (s Summary) String(format string) string {
	if len(s.Values) <= 1 {
		return fmt.Sprintf(format, s.Median)
	}
	return fmt.Sprintf(format+" ("+format+"–"+format+")", s.Median, s.Min, s.Max)
}

// Percentile returns the p-th percentile (0 < p ≤ 100) of sorted by the nearest-rank
// method; sorted must be in ascending order.
func Percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted))+0.999999999) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return sorted[rank]
}
