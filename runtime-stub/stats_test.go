package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"github.com/redmagic-patch/redmagic-patch/tracevm"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cStats runs the runtime's statistics writer on in and decodes its
// output strictly.
func cStats(t *testing.T, in statsInput, jit, gaveUp string) (Stats, []byte) {
	t.Helper()
	in.Out = filepath.Join(t.TempDir(), "stats.json")
	require.NoError(t, writeStatsC(in, jit, gaveUp))
	raw, err := os.ReadFile(in.Out)
	require.NoError(t, err)
	var st Stats
	require.NoError(t, jsonStrict(raw, &st), "%s", raw)
	return st, raw
}

func TestStatsWriter(t *testing.T) {
	sites := []siteIn{
		{Addr: 0x10, Name: "JUMP_BACKWARD", Object: 0, Index: 0, Kind: siteBackedge},
		{Addr: 0x20, Name: "redmagic_backwards_branch", Object: 0, Index: 1, Kind: siteAPICall, API: 1},
		{Addr: 0x30, Name: "redmagic_disable_branch", Object: 0, Index: 2, Kind: siteAPICall, API: 12, OverflowHits: 4},
		{Addr: 0x40, Name: "OP_JMP", Object: 1, Index: 0, Kind: siteBackedge, OverflowHits: 7},
		{Addr: 0x50, Name: "bad", Object: 1, Index: 1, Kind: 9},
	}
	tests := []struct {
		name  string
		rows  []rowIn
		check func(t *testing.T, st Stats)
	}{
		{
			name: "threads of one key add up",
			rows: []rowIn{{0, 5, 10, 1}, {0, 5, 20, 1}, {0, 6, 1, 0}, {3, 5, 2, 0}},
			check: func(t *testing.T, st Stats) {
				assert.Equal(t, uint64(31), st.Sites[0].Hits)
				assert.Equal(t, uint64(2), st.Sites[0].DistinctIDs)
				assert.Equal(t, uint64(9), st.Sites[3].Hits, "rows plus overflow")
				assert.Equal(t, uint64(1), st.Sites[3].DistinctIDs)
				assert.Equal(t, uint64(4), st.Sites[2].Hits)
				assert.Equal(t, uint64(31+9+4), st.SiteHits)
				assert.Equal(t, uint64(11), st.TableFullHits)
				assert.Equal(t, []HotLoop{
					{Object: 0, Site: 0, ID: 5, Hits: 30, SlowPathCalls: 2},
					{Object: 1, Site: 0, ID: 5, Hits: 2},
					{Object: 0, Site: 0, ID: 6, Hits: 1},
				}, st.HotLoops)
				assert.Equal(t, uint64(2), st.SlowPathCalls)
			},
		},
		{
			name: "only loop sites are hot loops",
			rows: []rowIn{{1, 9, 3, 0}, {2, 9, 100, 0}},
			check: func(t *testing.T, st Stats) {
				assert.Equal(t, []HotLoop{{Object: 0, Site: 1, ID: 9, Hits: 3}}, st.HotLoops)
				assert.Equal(t, "api:backwards_branch", st.Sites[1].Kind)
				assert.Equal(t, "api:disable_branch", st.Sites[2].Kind)
				assert.Equal(t, "backedge", st.Sites[3].Kind)
				assert.Equal(t, "unknown(9)", st.Sites[4].Kind)
			},
		},
		{
			name: "rows of unknown sites are dropped",
			rows: []rowIn{{5, 1, 1000, 1}, {0, 1, 1, 0}},
			check: func(t *testing.T, st Stats) {
				assert.Equal(t, uint64(1+4+7), st.SiteHits)
				assert.Len(t, st.HotLoops, 1)
				assert.Zero(t, st.SlowPathCalls)
			},
		},
		{
			name: "top 50 by hits, ties by object, site, id",
			rows: func() []rowIn {
				var r []rowIn
				for id := uint64(0); id < 120; id++ {
					r = append(r, rowIn{0, id, id / 2, 0})
				}
				return r
			}(),
			check: func(t *testing.T, st Stats) {
				require.Len(t, st.HotLoops, maxHotLoops)
				assert.Equal(t, HotLoop{ID: 118, Hits: 59}, st.HotLoops[0])
				assert.Equal(t, HotLoop{ID: 119, Hits: 59}, st.HotLoops[1])
				assert.Equal(t, HotLoop{ID: 71, Hits: 35}, st.HotLoops[49])
				assert.Equal(t, uint64(120), st.Sites[0].DistinctIDs)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := statsInput{PID: 42, Sites: sites, Rows: tt.rows, Threads: 3,
				HotThreshold: 1000, Objects: []objectIn{{Path: "/bin/x", Profile: "p"}}}
			st, _ := cStats(t, in, "", "")
			assert.Equal(t, 1, st.Version)
			assert.Equal(t, 42, st.PID)
			assert.Equal(t, uint64(3), st.Threads)
			assert.Equal(t, []ObjectStats{{Path: "/bin/x", Profile: "p"}}, st.Objects)
			require.Len(t, st.Sites, len(sites))
			tt.check(t, st)
		})
	}
}

// An empty process still writes every list as [] and gave_up as {}; the
// JIT's texts go in as they are.
func TestStatsJSONShape(t *testing.T) {
	_, raw := cStats(t, statsInput{PID: 1, Disabled: true}, "", "")
	assert.Equal(t, `{"version":1,"pid":1,"objects":[],"site_hits":0,"sites":[],"hot_loops":[],`+
		`"threads":0,"forked_child":false,"disabled":true,"gave_up":{},"hot_threshold":0,`+
		`"slow_path_calls":0,"table_full_hits":0,"invalid_site_calls":0,"dispatch_restored":0,"inline_cache_fills":0,"governor_quiets":0,"jit_rate_best":0,"jit_rate_refusals":0,"jit":null}`+"\n", string(raw))
	_, raw = cStats(t, statsInput{PID: 1}, `{"traces_compiled":2}`, `{"too-long":3}`)
	assert.Contains(t, string(raw), `"gave_up":{"too-long":3},`)
	assert.Contains(t, string(raw), `"jit":{"traces_compiled":2}}`)
}

// Strings are escaped as JSON needs, whatever bytes the files hold.
func TestStatsEscaping(t *testing.T) {
	name := "a\"b\\c\nd\x01<&>é\xff"
	in := statsInput{PID: 1, Objects: []objectIn{{Path: name, Profile: "p"}},
		Sites: []siteIn{{Name: name, Kind: siteBackedge}}}
	st, _ := cStats(t, in, "", "")
	assert.Equal(t, strings.ToValidUTF8(name, "\uFFFD"), st.Objects[0].Path)
	assert.Equal(t, strings.ToValidUTF8(name, "\uFFFD"), st.Sites[0].Name)
}

// STATS.md documents every field the JSON has.
func TestStatsDocumented(t *testing.T) {
	doc, err := os.ReadFile("STATS.md")
	require.NoError(t, err)
	for _, ty := range []reflect.Type{reflect.TypeFor[Stats](), reflect.TypeFor[ObjectStats](),
		reflect.TypeFor[SiteStats](), reflect.TypeFor[HotLoop](),
		reflect.TypeFor[tracevm.Snapshot](), reflect.TypeFor[tracevm.TraceStats](), reflect.TypeFor[tracevm.ExitStats]()} {
		for i := 0; i < ty.NumField(); i++ {
			name := strings.Split(ty.Field(i).Tag.Get("json"), ",")[0]
			assert.Contains(t, string(doc), "`"+name+"`", "%s.%s", ty.Name(), ty.Field(i).Name)
		}
	}
}

func TestWriteStatsErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "no", "such", "dir")
	err := writeStatsC(statsInput{Out: bad}, "", "")
	require.Error(t, err)
	assert.Equal(t, bad+": No such file or directory", err.Error())
}

// The Go encoder of the tests and the C compiler agree on the contract's
// layout, field by field.
// TestStatsTarget: where REDMAGIC_STATS sends a process's report. "%p" is
// the process id; without it the file belongs to the owner (the first
// process that read the variable) and any other process, one started
// below it, writes beside it under its own pid.
func TestStatsTarget(t *testing.T) {
	tests := []struct {
		name, pattern, cwd string
		pid, owner         int64
		want               string
		shared             bool
	}{
		{"owner", "/r/stats.json", "/w", 42, 42, "/r/stats.json", true},
		{"child of the owner", "/r/stats.json", "/w", 43, 42, "/r/stats.json.43", true},
		{"relative", "stats.json", "/w", 42, 42, "/w/stats.json", true},
		{"relative in /", "stats.json", "/", 42, 42, "/stats.json", true},
		{"no working directory", "stats.json", "", 42, 42, "stats.json", true},
		{"process id", "/r/stats.%p.json", "/w", 43, 42, "/r/stats.43.json", false},
		{"twice", "/r/%p/%p", "/w", 7, 7, "/r/7/7", false},
		{"escaped", "/r/100%%p", "/w", 7, 7, "/r/100%p", true},
		{"lone percent", "/r/50%-%x%", "/w", 7, 7, "/r/50%-%x%", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, shared, err := statsTarget(tt.pattern, tt.cwd, tt.pid, tt.owner)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.shared, shared)
		})
	}
	_, _, err := statsTarget("/"+strings.Repeat("x", 300), "/w", 1, 2)
	assert.Error(t, err, "a path that does not fit is refused, not cut")
	_, _, err = statsTarget("/r/"+strings.Repeat("%p", 40), "/w", 1234567, 1234567)
	assert.Error(t, err)
}

func TestLayout(t *testing.T) {
	c := cLayout()
	check := func(prefix string, v any) {
		ty := reflect.TypeOf(v)
		assert.Equal(t, c[prefix], uintptr(binary.Size(v)), prefix)
		for i := 0; i < ty.NumField(); i++ {
			f := ty.Field(i)
			key := prefix + "." + f.Tag.Get("c")
			off, ok := c[key]
			require.True(t, ok, key)
			assert.Equal(t, off, f.Offset, key)
		}
	}
	check("header", rmHeader{})
	check("site", rmSite{})
	assert.Equal(t, uintptr(len(apiNames)), c["api_count"])
}

// apiNames, RM_API_LIST in redmagic_patch.h (which makes enum rm_api and
// the statistics writer's names), the declarations in redmagic.h and the
// stubs of rm_api_entry.S list the same functions in the same order.
func TestAPINamesMatchHeaders(t *testing.T) {
	patch, err := os.ReadFile("include/redmagic_patch.h")
	require.NoError(t, err)
	list := regexp.MustCompile(`(?s)#define RM_API_LIST\(X\)(.*?)\n\n`).FindSubmatch(patch)
	require.NotNil(t, list)
	var fromList []string
	for _, m := range regexp.MustCompile(`X\([A-Z_]+, ([a-z_]+)\)`).FindAllSubmatch(list[1], -1) {
		fromList = append(fromList, string(m[1]))
	}
	assert.Equal(t, apiNames[:], fromList)
	assert.Contains(t, string(patch), "RM_API_LIST(RM_API_ENUM)", "enum rm_api comes from the list")

	decl, err := os.ReadFile("include/redmagic.h")
	require.NoError(t, err)
	for _, n := range apiNames {
		assert.Regexp(t, `(void|int) redmagic_`+n+`\(`, string(decl))
	}

	stats, err := os.ReadFile("host/rm_stats.c")
	require.NoError(t, err)
	assert.Regexp(t, `(?s)rm_api_names\[\] = \{\s*#define RM_API_NAME\(NAME, name\) #name,\s*RM_API_LIST\(RM_API_NAME\)`, string(stats),
		"host/rm_stats.c takes its names from the list")

	asm, err := os.ReadFile("host/rm_api_entry.S")
	require.NoError(t, err)
	var fromAsm []string
	for i, m := range regexp.MustCompile(`\\m (\w+), (\d+), \\k`).FindAllSubmatch(asm, -1) {
		assert.Equal(t, strconv.Itoa(i), string(m[2]))
		fromAsm = append(fromAsm, string(m[1]))
	}
	assert.Equal(t, apiNames[:], fromAsm)
}

// validImage builds a header, sites and strings as one image at vaddr.
func validImage(vaddr uint64) []byte {
	var st strtabBuilder
	st.add("")
	h := rmHeader{ABIVersion: abiVersion, HeaderSize: 232, Self: vaddr, SiteSize: uint32(binary.Size(rmSite{})), NSites: 2,
		Sites: vaddr + 256, Strtab: vaddr + 512, Profile: st.add("p"), ToolVersion: st.add("v"),
		BuildID: st.add("ab")}
	copy(h.Magic[:], "RMPATCH")
	sites := []rmSite{{Addr: 1, Kind: 1, Name: st.add("A")}, {Addr: 2, Kind: 2, API: 15, Name: st.add("B"), Flags: 1}}
	h.StrtabSize = uint32(len(st.b))
	img := make([]byte, 512+len(st.b))
	copy(img, encode(h))
	copy(img[256:], encode(sites))
	copy(img[512:], st.b)
	return img
}

func TestValidateImage(t *testing.T) {
	const va = 0x400000
	img := validImage(va)
	v, err := validateImage(img, va, pfR|pfW, va)
	require.NoError(t, err)
	assert.Equal(t, validatedImage{HeaderOff: 0, SitesOff: 256, NSites: 2, SiteSize: uint32(binary.Size(rmSite{})),
		StrtabOff: 512, StrtabSize: uint32(len(img) - 512)}, v)

	_, err = validateImage(img, va, pfR, va)
	var he *HeaderError
	require.ErrorAs(t, err, &he)
	assert.Contains(t, he.Reason, "not in a writable segment")
	_, err = validateImage(img[:100], va, pfR|pfW, va)
	assert.ErrorContains(t, err, "outside the loaded segments")
	_, err = validateImage(img, va, pfR|pfW, va+8)
	assert.ErrorContains(t, err, "bad header magic")
	_, err = validateImage(img[:len(img)-1], va, pfR|pfW, va)
	assert.ErrorContains(t, err, "string table at")
}

// FuzzValidate feeds arbitrary images to the constructor's validator: it
// must never read outside the image, and what it accepts must hold up.
func FuzzValidate(f *testing.F) {
	const va = 0x10000
	img := validImage(va)
	f.Add(img, uint64(0))
	f.Add(img[:300], uint64(0))
	f.Add(img, uint64(8))
	bad := bytes.Clone(img)
	binary.LittleEndian.PutUint32(bad[160:], 0xffffffff) // nsites
	f.Add(bad, uint64(0))
	f.Fuzz(func(t *testing.T, img []byte, hdrOff uint64) {
		v, err := validateImage(img, va, pfR|pfW, va+hdrOff)
		if err != nil {
			var he *HeaderError
			require.True(t, errors.As(err, &he))
			require.NotEmpty(t, he.Reason)
			return
		}
		n := uint64(len(img))
		require.Equal(t, hdrOff, v.HeaderOff)
		require.LessOrEqual(t, v.HeaderOff+232, n)
		require.LessOrEqual(t, v.SitesOff+uint64(v.NSites)*uint64(v.SiteSize), n)
		require.LessOrEqual(t, v.StrtabOff+uint64(v.StrtabSize), n)
		require.NotZero(t, v.StrtabSize)
		require.Zero(t, img[v.StrtabOff+uint64(v.StrtabSize)-1])
		require.Equal(t, "RMPATCH\x00", string(img[hdrOff:hdrOff+8]))
	})
}
