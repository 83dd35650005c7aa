package tracevm

import (
	"slices"
	"sort"

	"github.com/redmagic-patch/redmagic-patch/cfg/frame"
)

// objectFrames reads the machine's objects for frame.Analyse, where the
// file names no frame for a loop's function (a harness, an object the
// patcher did not analyse): Object.Funcs says where functions are.
type objectFrames struct{ m *Machine }

func (f objectFrames) FuncAt(pc uint64) (frame.Range, bool) {
	for i := range f.m.cfg.Objects {
		fs := f.m.cfg.Objects[i].Funcs
		k := sort.Search(len(fs), func(k int) bool { return fs[k].Hi > pc })
		if k < len(fs) && fs[k].contains(pc) {
			return frame.Range{Lo: fs[k].Lo, Hi: fs[k].Hi}, true
		}
	}
	return frame.Range{}, false
}

func (f objectFrames) Bytes(r frame.Range) []byte {
	o, ok := f.m.objectOf(r.Lo)
	if !ok || r.Hi <= r.Lo || !slices.ContainsFunc(o.Text, func(t Range) bool { return t.contains(r.Lo) && r.Hi <= t.Hi }) {
		return nil
	}
	return memAt(r.Lo, int(r.Hi-r.Lo))
}

// privateFrame returns the private slots of the function containing pc
// (frame.Slots), analysed once per function; none without Object.Funcs.
func (m *Machine) privateFrame(pc uint64) frame.Slots {
	fn, ok := objectFrames{m}.FuncAt(pc)
	if !ok {
		return frame.Slots{}
	}
	m.mu.Lock()
	ps, seen := m.frames[fn.Lo]
	m.mu.Unlock()
	if seen {
		return ps
	}
	ps = frame.Analyse(objectFrames{m}, pc)
	m.mu.Lock()
	m.frames[fn.Lo] = ps
	m.mu.Unlock()
	return ps
}

// loopFrame returns the private slots of the frame r's loop runs in: the
// file's (BackEdge.Frame, Site.Frame), else what Object.Funcs shows.
func (m *Machine) loopFrame(r *recording) frame.Slots {
	if be := m.backEdgeOfSite(r.key.gsite); be != nil {
		if !be.Frame.Empty() {
			return be.Frame
		}
		return m.privateFrame(be.Handler)
	}
	return m.siteFrames[r.key.gsite]
}
