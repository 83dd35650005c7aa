package tracevm

import (
	"slices"

	"github.com/redmagic-patch/redmagic-patch/cfg/frame"
)

// objectFrames reads the machine's objects for frame.Analyse, where the
// file names no frame for a loop's function (a harness, an object the
// patcher did not analyse): Object.Funcs says where functions are.
type objectFrames struct{ m *Machine }

func (f objectFrames) FuncAt(pc uint64) (frame.Range, bool) {
	for i := range f.m.cfg.Objects {
		if r, ok := f.m.cfg.Objects[i].Funcs.At(pc); ok {
			return r, true
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

// loopFrames gives every loop site the private slots of the frame its
// loops run in (siteFrames): the file's (BackEdge.Frame, Site.Frame), else
// what Object.Funcs shows, analysed here, where the JIT starts (on a
// thread of its own by default), once per function.
func (m *Machine) loopFrames() {
	m.siteFrames = make(map[uint32]frame.Slots)
	byFunc := map[uint64]frame.Slots{}
	frameOf := func(given frame.Slots, pc uint64) frame.Slots {
		if !given.Empty() {
			return given
		}
		fn, ok := objectFrames{m}.FuncAt(pc)
		if !ok {
			return frame.Slots{}
		}
		s, seen := byFunc[fn.Lo]
		if !seen {
			s = frame.Analyse(objectFrames{m}, pc)
			byFunc[fn.Lo] = s
		}
		return s
	}
	for i := range m.cfg.Objects {
		for _, be := range m.cfg.Objects[i].BackEdges {
			m.siteFrames[be.GSite] = frameOf(be.Frame, be.Handler)
		}
		for a, site := range m.cfg.Objects[i].Sites {
			if site.API == APIBackwardsBranch {
				m.siteFrames[site.GSite] = frameOf(site.Frame, a)
			}
		}
	}
}
