package web

import (
	"github.com/ferryci/ferry/internal/apiclient"
)

// dag is a build's pipelines laid out as their dependency graph: a column
// per depth (a pipeline sits one column right of the deepest pipeline it
// depends on), drawn as SVG by the build page.
type dag struct {
	Width, Height int
	Nodes         []dagNode
	Edges         []dagEdge
}

type dagNode struct {
	X, Y     int
	Pipeline *apiclient.Pipeline
	Selected bool
	// Link opens the pipeline's first step.
	Link string
}

type dagEdge struct{ X1, Y1, X2, Y2 int }

// The DAG's geometry, in SVG units.
const (
	dagNodeW = 180
	dagNodeH = 36
	dagGapX  = 60
	dagGapY  = 16
	dagPad   = 4
)

// pipelineDAG lays out b's pipelines. A dependency on a pipeline that is
// not in the build (filtered out by its trigger) is ignored; a cycle,
// which the compiler refuses, would put the pipelines of the cycle in
// column 0.
func pipelineDAG(slug string, b *apiclient.Build, selected *apiclient.Pipeline) *dag {
	byName := make(map[string]*apiclient.Pipeline, len(b.Pipelines))
	for _, p := range b.Pipelines {
		byName[p.Name] = p
	}
	depth := make(map[string]int, len(b.Pipelines))
	visiting := map[string]bool{}
	var walk func(p *apiclient.Pipeline) int
	walk = func(p *apiclient.Pipeline) int {
		if d, ok := depth[p.Name]; ok {
			return d
		}
		if visiting[p.Name] {
			return 0
		}
		visiting[p.Name] = true
		d := 0
		for _, dep := range p.DependsOn {
			if q, ok := byName[dep]; ok {
				d = max(d, walk(q)+1)
			}
		}
		depth[p.Name] = d
		return d
	}
	rows := map[int]int{}
	pos := map[string][2]int{}
	g := &dag{}
	for _, p := range b.Pipelines {
		col := walk(p)
		row := rows[col]
		rows[col]++
		x := dagPad + col*(dagNodeW+dagGapX)
		y := dagPad + row*(dagNodeH+dagGapY)
		pos[p.Name] = [2]int{x, y}
		link := buildURL(slug, b.Number)
		if len(p.Steps) > 0 {
			link = stepURL(slug, b.Number, p.Number, p.Steps[0].Number)
		}
		g.Nodes = append(g.Nodes, dagNode{X: x, Y: y, Pipeline: p, Selected: selected != nil && p.Number == selected.Number, Link: link})
		g.Width = max(g.Width, x+dagNodeW+dagPad)
		g.Height = max(g.Height, y+dagNodeH+dagPad)
	}
	for _, p := range b.Pipelines {
		to := pos[p.Name]
		for _, dep := range p.DependsOn {
			from, ok := pos[dep]
			if !ok {
				continue
			}
			g.Edges = append(g.Edges, dagEdge{X1: from[0] + dagNodeW, Y1: from[1] + dagNodeH/2, X2: to[0], Y2: to[1] + dagNodeH/2})
		}
	}
	return g
}
