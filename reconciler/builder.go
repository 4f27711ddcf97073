package reconciler

import (
	"container/heap"
	"fmt"
	"sort"
	"strings"
)

// builder collects ops in creation order (which the planner keeps
// deterministic), then numbers them in a topological order that prefers
// creation order, so the printed plan is stable and reads top to bottom.
type builder struct {
	ops []*Op // ops[i] has provisional id i+1
}

// add appends op and returns its provisional id. Zero deps are ignored so
// callers can pass "no op" ids freely.
func (b *builder) add(op *Op, deps ...int) int {
	b.ops = append(b.ops, op)
	op.ID = len(b.ops)
	b.dep(op.ID, deps...)
	return op.ID
}

// dep adds hard dependencies to op id.
func (b *builder) dep(id int, deps ...int) {
	op := b.ops[id-1]
	for _, d := range deps {
		if d != 0 && d != id {
			op.Deps = append(op.Deps, d)
		}
	}
}

// soft adds After dependencies to op id.
func (b *builder) soft(id int, deps ...int) {
	op := b.ops[id-1]
	for _, d := range deps {
		if d != 0 && d != id {
			op.After = append(op.After, d)
		}
	}
}

type idHeap []int

func (h idHeap) Len() int           { return len(h) }
func (h idHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h idHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *idHeap) Push(x any)        { *h = append(*h, x.(int)) }
func (h *idHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// finish orders the ops topologically and renumbers every reference.
func (b *builder) finish() ([]*Op, error) {
	n := len(b.ops)
	indeg := make([]int, n+1)
	out := make([][]int, n+1)
	for _, op := range b.ops {
		op.Deps = uniq(op.Deps)
		op.After = minus(uniq(op.After), op.Deps)
		for _, d := range op.Deps {
			out[d] = append(out[d], op.ID)
			indeg[op.ID]++
		}
		for _, d := range op.After {
			out[d] = append(out[d], op.ID)
			indeg[op.ID]++
		}
	}
	h := &idHeap{}
	for id := 1; id <= n; id++ {
		if indeg[id] == 0 {
			*h = append(*h, id)
		}
	}
	heap.Init(h)
	newID := make([]int, n+1)
	order := make([]*Op, 0, n)
	for h.Len() > 0 {
		id := heap.Pop(h).(int)
		order = append(order, b.ops[id-1])
		newID[id] = len(order)
		for _, s := range out[id] {
			indeg[s]--
			if indeg[s] == 0 {
				heap.Push(h, s)
			}
		}
	}
	if len(order) != n {
		// Name the ops left (those on or behind the cycle), so that the
		// error can be debugged.
		var left []string
		for id := 1; id <= n; id++ {
			if indeg[id] > 0 {
				left = append(left, b.ops[id-1].String())
			}
		}
		return nil, fmt.Errorf("internal error: the plan has a cycle among:\n%s", strings.Join(left, "\n"))
	}
	for _, op := range order {
		op.ID = newID[op.ID]
		op.Deps = renumber(op.Deps, newID)
		op.After = renumber(op.After, newID)
		op.OnFailure = renumber(op.OnFailure, newID)
		op.IDFrom = newID[op.IDFrom]
		op.DigestFrom = newID[op.DigestFrom]
	}
	return order, nil
}

func uniq(ids []int) []int {
	if len(ids) < 2 {
		return ids
	}
	sort.Ints(ids)
	out := ids[:1]
	for _, id := range ids[1:] {
		if id != out[len(out)-1] {
			out = append(out, id)
		}
	}
	return out
}

func renumber(ids []int, newID []int) []int {
	for i, id := range ids {
		ids[i] = newID[id]
	}
	sort.Ints(ids)
	return ids
}

// minus returns the sorted ids not in the sorted drop.
func minus(ids, drop []int) []int {
	if len(ids) == 0 || len(drop) == 0 {
		return ids
	}
	out := ids[:0]
	j := 0
	for _, id := range ids {
		for j < len(drop) && drop[j] < id {
			j++
		}
		if j < len(drop) && drop[j] == id {
			continue
		}
		out = append(out, id)
	}
	return out
}
