package bench

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

var seriesLabels = map[string]string{
	"ours": "publisher (ours)", "direct": "direct to daprd", "gosdk": "go-sdk gRPC publisher", "python": "Python (FastAPI + Dapr SDK) publisher",
	"worker": "worker (ours, in-memory dedupe)", "noop": "no-op handler", "worker-ledger": "worker (ours, durable ledger)",
}

// plots writes throughput-vs-concurrency.png and drain-single-vs-bulk.png.
func (b *bench) plots() error {
	if err := os.MkdirAll(b.cfg.Plots, 0o750); err != nil {
		return err
	}
	if len(b.sweep) > 0 {
		if err := sweepPlot(b.sweep, filepath.Join(b.cfg.Plots, "throughput-vs-concurrency.png")); err != nil {
			return err
		}
	}
	if len(b.drains) > 0 {
		return drainPlot(b.drains, filepath.Join(b.cfg.Plots, "drain-single-vs-bulk.png"))
	}
	return nil
}

// sweepPlot draws requests/s against connections (log2 axis), one line per publisher.
func sweepPlot(points []SweepPoint, path string) error {
	p := plot.New()
	p.Title.Text = "POST /tasks throughput against concurrency (wrk, loopback)"
	p.X.Label.Text = "connections"
	p.Y.Label.Text = "accepted requests/s"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = powersOfTwo{}
	p.Y.Min = 0
	p.Y.Tick.Marker = wholeTicks{}
	p.Legend.Top = true
	p.Legend.Left = true
	i := 0
	for _, v := range []string{"ours", "direct", "gosdk", "python"} {
		var xy plotter.XYs
		for _, pt := range points {
			if pt.Variant == v {
				xy = append(xy, plotter.XY{X: float64(pt.Connections), Y: pt.RPS})
			}
		}
		if len(xy) == 0 {
			continue
		}
		line, marks, err := plotter.NewLinePoints(xy)
		if err != nil {
			return err
		}
		line.Color, marks.Color = plotutil.Color(i), plotutil.Color(i)
		line.Width = vg.Points(1.5)
		marks.Shape = plotutil.Shape(i)
		p.Add(line, marks)
		p.Legend.Add(seriesLabels[v], line, marks)
		i++
	}
	p.Add(plotter.NewGrid())
	headroom(p)
	return p.Save(8*vg.Inch, 5*vg.Inch, path)
}

// headroom raises the y axis by a third so the legend, top left, covers no data.
func headroom(p *plot.Plot) {
	p.Y.Max *= 4.0 / 3
}

// drainPlot draws each handler's median drain rate, single beside bulk delivery, with the
// min–max of the rounds as whiskers.
func drainPlot(runs []DrainRun, path string) error {
	p := plot.New()
	p.Title.Text = "Draining a Redis backlog: single against bulk delivery"
	p.Y.Label.Text = "events/s (median, whiskers min–max)"
	p.Y.Min = 0
	p.Y.Tick.Marker = wholeTicks{}
	var handlers, names []string
	for _, h := range []string{"worker", "noop", "worker-ledger"} {
		for _, r := range runs {
			if r.Handler == h {
				handlers, names = append(handlers, h), append(names, seriesLabels[h])
				break
			}
		}
	}
	for i, mode := range []string{modeSingle, modeBulk} {
		var pts medianSpread
		for x, h := range handlers {
			var rates []float64
			for _, r := range runs {
				if r.Handler == h && r.Mode == mode {
					rates = append(rates, r.Rate)
				}
			}
			if len(rates) > 0 {
				// Single left of the category, bulk right of it.
				pts = append(pts, point{x: float64(x) + 0.15*(2*float64(i)-1), s: Summarize(rates)})
			}
		}
		if len(pts) == 0 {
			continue
		}
		sc, err := plotter.NewScatter(pts)
		if err != nil {
			return err
		}
		sc.Color = plotutil.Color(i)
		sc.Shape = plotutil.Shape(i)
		sc.Radius = vg.Points(4)
		whiskers, err := plotter.NewYErrorBars(pts)
		if err != nil {
			return err
		}
		whiskers.Color = plotutil.Color(i)
		p.Add(sc, whiskers)
		p.Legend.Add(mode+" delivery", sc)
	}
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.5, float64(len(names))-0.5
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	headroom(p)
	return p.Save(8*vg.Inch, 5*vg.Inch, path)
}

type point struct {
	x float64
	s Summary
}

// medianSpread is plotter.XYer (the medians) and plotter.YErrorer (down to the minimum,
// up to the maximum).
type medianSpread []point

func (m medianSpread) Len() int                    { return len(m) }
func (m medianSpread) XY(i int) (float64, float64) { return m[i].x, m[i].s.Median }
func (m medianSpread) YError(i int) (float64, float64) {
	return m[i].s.Median - m[i].s.Min, m[i].s.Max - m[i].s.Median
}

// powersOfTwo labels a log axis at 1, 2, 4, 8, ….
type powersOfTwo struct{}

func (powersOfTwo) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for v := 1.0; v <= hi*1.0001; v *= 2 {
		if v >= lo*0.9999 {
			ticks = append(ticks, plot.Tick{Value: v, Label: fmt.Sprint(math.Round(v))})
		}
	}
	return ticks
}

// wholeTicks is gonum's default ticks labelled as whole numbers ("7500", not "7500.00").
type wholeTicks struct{}

func (wholeTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = strconv.FormatFloat(ticks[i].Value, 'f', 0, 64)
		}
	}
	return ticks
}
