package main

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// This file builds what the runtime's tests run: libredmagic.so and
// libredmagic-jit.so (with the Makefile, as make build does), and the
// harness (testdata/harness.c) linked against it and then patched the way
// redmagic-patch patches an interpreter: a header, a site table and a
// string table written into the file, and a DT_REDMAGIC dynamic entry.

const dtRedmagic = 0x6d726d31

// rmHeader and rmSite mirror struct rm_patch_header and struct rm_site
// field for field (the c tags name the C fields); TestLayout checks them
// against the C compiler.
type rmHeader struct {
	Magic       [8]byte    `c:"magic"`
	ABIVersion  uint32     `c:"abi_version"`
	HeaderSize  uint32     `c:"header_size"`
	HitFn       uint64     `c:"hit_fn"`
	APIFn       [16]uint64 `c:"api_fn"`
	Self        uint64     `c:"self"`
	NSites      uint32     `c:"nsites"`
	SiteSize    uint32     `c:"site_size"`
	Sites       uint64     `c:"sites"`
	Strtab      uint64     `c:"strtab"`
	StrtabSize  uint32     `c:"strtab_size"`
	Profile     uint32     `c:"profile"`
	ToolVersion uint32     `c:"tool_version"`
	BuildID     uint32     `c:"build_id"`
	Reserved    [4]uint64  `c:"reserved"`
}

type rmSite struct {
	Addr      uint64    `c:"addr"`
	Resume    uint64    `c:"resume"`
	Kind      uint32    `c:"kind"`
	API       uint32    `c:"api"`
	IDReg     int32     `c:"id_reg"`
	AuxReg    int32     `c:"aux_reg"`
	Name      uint32    `c:"name"`
	Flags     uint32    `c:"flags"`
	Tramp     uint64    `c:"trampoline"`
	Slot      uint64    `c:"slot"`
	SlotOrig  uint64    `c:"slot_orig"`
	SlotKind  uint32    `c:"slot_kind"`
	Frame     uint32    `c:"frame"`
	Countdown int64     `c:"countdown"`
	ICID      [2]uint64 `c:"ic_id"`
	ICHead    [2]uint64 `c:"ic_head"`
}

func encode(v any) []byte {
	var b bytes.Buffer
	if err := binary.Write(&b, binary.LittleEndian, v); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// The harness's sites, fixed by these tests: index 0 and 18 are plain
// back-edges, 1 is a Lua 5.4 OP_JMP back-edge, 2+api is a call of API
// function api, 19 a sampled back-edge.
const (
	siteJump      = 0
	siteLuaJmp    = 1
	siteAPI0      = 2
	siteJumpQuick = 2 + 16
	siteSampled   = 19
	nTestSites    = 20
)

// testTramp and testSlotOrig are made-up trampoline addresses and
// original dispatch entries of site i (never run: the harness only reads
// its test entries back).
func testTramp(i int) uint64    { return 0x7000 + uint64(i) }
func testSlotOrig(i int) uint64 { return 0x9000 + uint64(i) }

// testSiteAddr is the made-up link-time address recorded for site i.
func testSiteAddr(i int) uint64 { return 0x1000 + 0x10*uint64(i) }

func testSiteName(i int) string {
	switch {
	case i == siteJump:
		return "JUMP_BACKWARD"
	case i == siteLuaJmp:
		return "OP_JMP"
	case i == siteJumpQuick:
		return "JUMP_BACKWARD_QUICK"
	case i == siteSampled:
		return "JUMP_BACKWARD_SAMPLED"
	}
	return "redmagic_" + apiNames[i-siteAPI0]
}

// patchSpec is one way to patch the harness. The zero value is a valid
// patch; mutate changes it before it is written.
type patchSpec struct {
	target string // header symbol; rm_test_header by default
	mutate func(h *rmHeader, sites []rmSite, strtab *[]byte)
	noDT   bool // leave .dynamic alone
	// slots points three sites at the harness's test dispatch entries
	// (rm_test_ro64, rm_test_rw64, rm_test_pic32), holding their
	// trampolines as a patcher leaves them (non-PIE only: bias 0).
	slots bool
	dtPtr *uint64 // DT_REDMAGIC value other than the header's address
}

type strtabBuilder struct{ b []byte }

func (s *strtabBuilder) add(str string) uint32 {
	off := uint32(len(s.b))
	s.b = append(append(s.b, str...), 0)
	return off
}

// buildID returns the hex build-id of an ELF file, or "".
func buildID(f *elf.File) string {
	s := f.Section(".note.gnu.build-id")
	if s == nil {
		return ""
	}
	d, err := s.Data()
	if err != nil || len(d) < 16 {
		return ""
	}
	namesz := binary.LittleEndian.Uint32(d)
	descsz := binary.LittleEndian.Uint32(d[4:])
	start := 12 + (namesz+3)&^3
	if int(start+descsz) > len(d) {
		return ""
	}
	return hex.EncodeToString(d[start : start+descsz])
}

// patchHarness writes a patched copy of the harness src to dst.
func patchHarness(t *testing.T, src, dst string, spec patchSpec) {
	t.Helper()
	data, err := os.ReadFile(src)
	require.NoError(t, err)
	f, err := elf.NewFile(bytes.NewReader(data))
	require.NoError(t, err)
	syms, err := f.Symbols()
	require.NoError(t, err)
	sym := map[string]elf.Symbol{}
	for _, s := range syms {
		sym[s.Name] = s
	}
	// fileOff finds the bytes of [vaddr, vaddr+n) in the file.
	fileOff := func(vaddr, n uint64) uint64 {
		for _, p := range f.Progs {
			if p.Type == elf.PT_LOAD && vaddr >= p.Vaddr && vaddr+n <= p.Vaddr+p.Filesz {
				return p.Off + vaddr - p.Vaddr
			}
		}
		t.Fatalf("%#x+%d is not in the file", vaddr, n)
		return 0
	}
	target := spec.target
	if target == "" {
		target = "rm_test_header"
	}
	hs, ss, ts := sym[target], sym["rm_test_sites"], sym["rm_test_strtab"]
	require.NotZero(t, hs.Value, target)

	var st strtabBuilder
	st.add("")
	h := rmHeader{
		ABIVersion:  abiVersion,
		HeaderSize:  uint32(binary.Size(rmHeader{})),
		Self:        hs.Value,
		NSites:      nTestSites,
		SiteSize:    uint32(binary.Size(rmSite{})),
		Sites:       ss.Value,
		Strtab:      ts.Value,
		Profile:     st.add("test-profile"),
		ToolVersion: st.add("test-1.0"),
		BuildID:     st.add(buildID(f)),
	}
	copy(h.Magic[:], "RMPATCH")
	sites := make([]rmSite, nTestSites)
	for i := range sites {
		sites[i] = rmSite{Addr: testSiteAddr(i), Resume: testSiteAddr(i) + 5,
			Kind: 1, IDReg: 15, AuxReg: -1, Name: st.add(testSiteName(i))}
		if i >= siteAPI0 && i < siteAPI0+16 {
			sites[i].Kind, sites[i].API, sites[i].IDReg = 2, uint32(i-siteAPI0), -1
		}
	}
	sites[siteLuaJmp].Flags = 1
	sites[siteLuaJmp].AuxReg = 12
	sites[siteSampled].Flags = 4 // RM_SITE_SAMPLED
	if spec.slots {
		for _, x := range []struct {
			site int
			sym  string
			kind uint32
		}{{siteJump, "rm_test_ro64", 1}, {siteJumpQuick, "rm_test_rw64", 1}, {siteAPI0 + 1, "rm_test_pic32", 2}} {
			s := &sites[x.site]
			s.Tramp, s.Slot, s.SlotOrig, s.SlotKind = testTramp(x.site), sym[x.sym].Value, testSlotOrig(x.site), x.kind
			if x.kind == 1 {
				binary.LittleEndian.PutUint64(data[fileOff(s.Slot, 8):], s.Tramp)
			} else {
				binary.LittleEndian.PutUint32(data[fileOff(s.Slot, 4):], uint32(s.SlotOrig+s.Tramp-s.Resume))
			}
		}
	}
	strtab := st.b
	h.StrtabSize = uint32(len(strtab))
	if spec.mutate != nil {
		spec.mutate(&h, sites, &strtab)
	}
	hb, sb := encode(h), encode(sites)
	require.LessOrEqual(t, uint64(len(sb)), ss.Size)
	require.LessOrEqual(t, uint64(len(strtab)), ts.Size)
	copy(data[fileOff(hs.Value, uint64(len(hb))):], hb)
	copy(data[fileOff(ss.Value, uint64(len(sb))):], sb)
	copy(data[fileOff(ts.Value, uint64(len(strtab))):], strtab)

	if !spec.noDT {
		dyn := f.Section(".dynamic")
		require.NotNil(t, dyn)
		ptr := hs.Value
		if spec.dtPtr != nil {
			ptr = *spec.dtPtr
		}
		n := dyn.Size / 16
		done := false
		// The first DT_NULL becomes DT_REDMAGIC when another DT_NULL
		// follows it to end the table (ld leaves spare ones).
		for i := uint64(0); i+1 < n && !done; i++ {
			off := dyn.Offset + 16*i
			if binary.LittleEndian.Uint64(data[off:]) == 0 {
				binary.LittleEndian.PutUint64(data[off:], dtRedmagic)
				binary.LittleEndian.PutUint64(data[off+8:], ptr)
				done = true
			}
		}
		require.True(t, done, "no spare dynamic entry")
	}
	require.NoError(t, os.WriteFile(dst, data, 0o755))
}

// fixture is the built runtime and the unpatched harnesses.
type fixture struct {
	dir      string
	so       string            // libredmagic.so
	jit      string            // libredmagic-jit.so
	harness  map[string]string // "pie", "nopie" -> path
	buildErr error
}

var (
	fixOnce sync.Once
	fix     fixture
)

func run(dir string, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// getFixture builds the libraries and the harnesses once per test binary.
func getFixture(t *testing.T) *fixture {
	t.Helper()
	fixOnce.Do(func() {
		dir, err := os.MkdirTemp("", "redmagic-runtime-test-")
		if err != nil {
			fix.buildErr = err
			return
		}
		fix.dir = dir
		fix.so = filepath.Join(dir, "libredmagic.so")
		fix.harness = map[string]string{}
		pkg, _ := os.Getwd()
		fix.jit = filepath.Join(dir, "libredmagic-jit.so")
		if err := run(pkg, "make", "--no-print-directory", "BUILD="+dir, fix.so, fix.jit); err != nil {
			fix.buildErr = err
			return
		}
		for _, kind := range []string{"pie", "nopie"} {
			out := filepath.Join(dir, "harness-"+kind)
			args := []string{"-O2", "-g", "-Wall", "-Werror", "-I" + filepath.Join(pkg, "include"),
				"-" + strings.Replace(kind, "nopie", "no-pie", 1), "-o", out,
				filepath.Join(pkg, "testdata/harness.c"), filepath.Join(pkg, "testdata/harness_call.S"),
				"-L" + dir, "-Wl,--no-as-needed", "-lredmagic", "-Wl,-rpath," + dir, "-lpthread"}
			if err := run(pkg, "gcc", args...); err != nil {
				fix.buildErr = err
				return
			}
			fix.harness[kind] = out
		}
	})
	require.NoError(t, fix.buildErr)
	return &fix
}

// patched returns a harness patched according to spec, in t's temp dir.
func (fx *fixture) patched(t *testing.T, kind string, spec patchSpec) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "harness-"+kind)
	patchHarness(t, fx.harness[kind], dst, spec)
	return dst
}

// result is one run of a harness.
type result struct {
	stdout, stderr string
	exit           int
	stats          *Stats
	statsRaw       []byte
}

// harnessTimeout bounds every harness run: a hang is a failure.
var harnessTimeout = 60 * time.Second

// runHarness runs bin with args under a timeout (a hang is a failure) and
// the environment env added to a copy of ours without REDMAGIC_*. Stats
// are written to a file and decoded strictly (unknown fields fail).
func runHarness(t *testing.T, bin string, env []string, args ...string) result {
	t.Helper()
	statsPath := filepath.Join(t.TempDir(), "stats.json")
	ctx, cancel := context.WithTimeout(context.Background(), harnessTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	// A hung forked child would keep the output pipes open: kill the
	// whole process group, and stop waiting for the pipes soon after.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "REDMAGIC_") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	// The JIT loads at the first hot loop, not after the default delay
	// that spares short programs its start-up nor only once loops run
	// fast, and on the thread that found it, not in the background: these
	// programs are short.
	cmd.Env = append(cmd.Env, "REDMAGIC_STATS="+statsPath, "REDMAGIC_JIT_DELAY=0", "REDMAGIC_JIT_RATE=0", "REDMAGIC_JIT_BACKGROUND=0", "REDMAGIC_JIT_BUDGET=0")
	cmd.Env = append(cmd.Env, env...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	require.NoError(t, ctx.Err(), "harness timed out (hang?): %s", se.String())
	r := result{stdout: so.String(), stderr: se.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.exit = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	if raw, err := os.ReadFile(statsPath); err == nil {
		r.statsRaw = raw
		var st Stats
		require.NoError(t, jsonStrict(raw, &st), "stats: %s", raw)
		require.Equal(t, cmd.Process.Pid, st.PID)
		r.stats = &st
	}
	return r
}

func (s *Stats) site(t *testing.T, index uint32) SiteStats {
	t.Helper()
	for _, x := range s.Sites {
		if x.Object == 0 && x.Index == index {
			return x
		}
	}
	t.Fatalf("site %d not in stats", index)
	return SiteStats{}
}

// loop finds a hot_loops entry; ok is false when it is absent.
func (s *Stats) loop(site uint32, id uint64) (HotLoop, bool) {
	for _, l := range s.HotLoops {
		if l.Object == 0 && l.Site == site && l.ID == id {
			return l, true
		}
	}
	return HotLoop{}, false
}

// jsonStrict decodes one JSON value, failing on unknown fields.
func jsonStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func init() {
	if v := os.Getenv("RM_TEST_HARNESS_TIMEOUT"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			harnessTimeout = d
		}
	}
}

// TestMain removes the fixture's build directory after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if fix.dir != "" {
		os.RemoveAll(fix.dir)
	}
	os.Exit(code)
}
