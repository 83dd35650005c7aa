package redmagic

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redmagic-patch/redmagic-patch/cfg/sites"
	"github.com/redmagic-patch/redmagic-patch/internal/testenv"
)

// TestHeaderLayoutMatchesC compiles runtime-stub/include/redmagic_patch.h
// and checks every offset the patcher writes against the C compiler's.
func TestHeaderLayoutMatchesC(t *testing.T) {
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	include := filepath.Join(root, "runtime-stub", "include")
	dir := t.TempDir()
	src := `#include <stdio.h>
#include <stddef.h>
#include "redmagic_patch.h"
#define H(f) printf("%s %zu\n", #f, offsetof(struct rm_patch_header, f))
#define S(f) printf("site_%s %zu\n", #f, offsetof(struct rm_site, f))
int main(void) {
	H(magic); H(abi_version); H(header_size); H(hit_fn); H(api_fn); H(self);
	H(nsites); H(site_size); H(sites); H(strtab); H(strtab_size); H(profile);
	H(tool_version); H(build_id); H(reserved);
	printf("sizeof_header %zu\n", sizeof(struct rm_patch_header));
	S(addr); S(resume); S(kind); S(api); S(id_reg); S(aux_reg); S(name); S(flags);
	S(trampoline); S(slot); S(slot_orig); S(slot_kind); S(frame); S(countdown); S(ic_id); S(ic_head);
	printf("sizeof_site %zu\n", sizeof(struct rm_site));
	printf("abi %d\napi_count %d\ndt %d\nkind_back %d\nkind_api %d\nflag_sj %u\nflag_notrace %u\nflag_sampled %u\nflag_ic %u\nflag_oparg %u\nflag_cond %u\nflag_cpy_cmp %u\nflags_known %u\ncond_period %d\nic_ways %d\nic_empty %llu\n",
		RM_ABI_VERSION, RM_API_COUNT, DT_REDMAGIC, RM_SITE_BACKEDGE, RM_SITE_API_CALL, RM_SITE_LUA54_SJ,
		RM_SITE_NO_TRACE, RM_SITE_SAMPLED, RM_SITE_IC, RM_SITE_OPARG_BACK, RM_SITE_LUA54_COND_SJ, RM_SITE_CPY311_CMP_JUMP, RM_SITE_FLAGS_KNOWN, RM_COND_FORWARD_PERIOD, RM_IC_WAYS, RM_IC_EMPTY);
	printf("slot_none %d\nslot_addr64 %d\nslot_off32 %d\n", RM_SLOT_NONE, RM_SLOT_ADDR64, RM_SLOT_OFF32);
	return 0;
}
`
	bin := testenv.BuildC(t, dir, "o", src, "-I", include)
	out, err := exec.Command(bin).Output()
	require.NoError(t, err)
	got := map[string]uint64{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		v, err := strconv.ParseUint(f[1], 10, 64)
		require.NoError(t, err)
		got[f[0]] = v
	}
	want := map[string]uint64{
		"magic": hdrMagic, "abi_version": hdrABI, "header_size": hdrSize, "hit_fn": hdrHitFn,
		"api_fn": hdrAPIFn, "self": hdrSelf, "nsites": hdrNSites, "site_size": hdrSiteSize,
		"sites": hdrSites, "strtab": hdrStrtab, "strtab_size": hdrStrtabSz, "profile": hdrProfile,
		"tool_version": hdrToolVer, "build_id": hdrBuildID, "reserved": hdrReserved,
		"sizeof_header": headerSize,
		"site_addr":     siteAddr, "site_resume": siteResume, "site_kind": siteKind, "site_api": siteAPI,
		"site_id_reg": siteIDReg, "site_aux_reg": siteAuxReg, "site_name": siteName,
		"site_flags": siteFlags, "site_trampoline": siteTramp, "site_slot": siteSlot,
		"site_slot_orig": siteSlotOrig, "site_slot_kind": siteSlotKind, "site_frame": siteFrame, "site_countdown": siteCountdown,
		"site_ic_id": siteICID, "site_ic_head": siteICHead, "flag_ic": siteFlagIC, "ic_ways": icWays, "ic_empty": icEmpty,
		"sizeof_site": siteSize,
		"slot_none":   slotNone, "slot_addr64": slotAddr64, "slot_off32": slotOff32,
		"abi": abiVersion, "api_count": apiCount, "dt": uint64(DTRedmagic),
		"kind_back": siteKindBack, "kind_api": siteKindAPI, "flag_sj": flagLua54SJ,
		"flag_notrace": siteFlagNoTrace, "flag_sampled": siteFlagSampled, "flag_oparg": flagOpargBack, "flag_cond": flagLua54CondSJ, "flag_cpy_cmp": flagCPython311CmpJump, "flags_known": uint64(knownSiteFlags), "cond_period": condForwardPeriod,
	}
	require.Equal(t, want, got)
}

// TestProfileFlagsHaveBits: every flag a profile may give a site has its
// bit in the header (one the writer left out would be dropped silently).
func TestProfileFlagsHaveBits(t *testing.T) {
	for _, fl := range sites.ProfileFlags {
		bit := profileFlags([]string{fl})
		assert.NotZero(t, bit, fl)
		assert.Zero(t, bit&^knownSiteFlags, fl)
	}
}
