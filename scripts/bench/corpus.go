package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// CorpusDir holds realistic Lua programs, relative to the repository root.
// Each file's first line gives its sizes, `-- sizes: FULL SMALL`, so that
// adding a program needs no change here.
const CorpusDir = "testdata/bench/corpus"

// sizeWord is what a size may look like: it is a command-line argument and
// part of an expected-output file name.
var sizeWord = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// corpusNoPeers is why luajit does not run the corpus: most of its
// programs use Lua 5.3/5.4 features (integers, //, bitwise operators,
// utf8), and a peer's wrong answer would fail the whole session.
const corpusNoPeers = "Lua 5.4 corpus: LuaJIT implements Lua 5.1"

// CorpusSuite registers every CorpusDir/*.lua under root as program
// luacorpus/<basename> of lua5.4, in file-name order. A file without a
// valid sizes header is an error (all such files are named), not a program
// silently left out.
func CorpusSuite(root string) ([]Program, error) {
	files, err := filepath.Glob(filepath.Join(root, CorpusDir, "*.lua"))
	if err != nil {
		return nil, err
	}
	var ps []Program
	var errs []error
	for _, f := range files {
		full, small, err := readSizesHeader(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("lua corpus: %w", err))
			continue
		}
		base := filepath.Base(f)
		ps = append(ps, Program{Name: SuiteLuaCorpus + "/" + strings.TrimSuffix(base, ".lua"), Family: "lua5.4",
			Script: CorpusDir + "/" + base, Full: full, Small: small, NoPeers: corpusNoPeers})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return ps, nil
}

func readSizesHeader(path string) (full, small string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	line := ""
	if sc.Scan() {
		line = sc.Text()
	}
	if err := sc.Err(); err != nil {
		return "", "", fmt.Errorf("%s: %w", path, err)
	}
	full, small, err = parseSizesHeader(line)
	if err != nil {
		return "", "", fmt.Errorf("%s: first line: %w", path, err)
	}
	return full, small, nil
}

// parseSizesHeader reads `-- sizes: FULL SMALL`.
func parseSizesHeader(line string) (full, small string, err error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), "--")
	if ok {
		rest, ok = strings.CutPrefix(strings.TrimSpace(rest), "sizes:")
	}
	if !ok {
		return "", "", fmt.Errorf("%q is not `-- sizes: FULL SMALL`", line)
	}
	f := strings.Fields(rest)
	if len(f) != 2 {
		return "", "", fmt.Errorf("%q: want two sizes, FULL and SMALL, got %d", line, len(f))
	}
	for _, s := range f {
		if !sizeWord.MatchString(s) {
			return "", "", fmt.Errorf("%q: size %q must be letters, digits, '.', '_' or '-'", line, s)
		}
	}
	return f[0], f[1], nil
}
