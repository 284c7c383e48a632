package dmarc

import (
	"bytes"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/vigilhq/vigil/pkg/corpus"
)

type benchFile struct {
	name    string
	data    []byte
	records int
}

// benchCorpus loads every plain-XML aggregate file from the corpus that is a real, anonymised
// real or synthetic report and parses, so the benchmark measures what providers send.
func benchCorpus(b *testing.B) []benchFile {
	b.Helper()
	dir, entries := corpus.ForTest(b)
	var files []benchFile
	for _, e := range entries {
		if e.Kind != "aggregate" || e.Compression != "none" || !e.Real() && e.Provenance != "synthetic" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.RelPath()))
		if err != nil {
			b.Fatal(err)
		}
		rep, err := ParseBytes(data, Limits{})
		if err != nil {
			continue // the deliberately broken ones; TestCorpus checks they fail
		}
		files = append(files, benchFile{e.RelPath(), data, len(rep.Records)})
	}
	if len(files) < 50 {
		b.Fatalf("only %d parseable corpus files", len(files))
	}
	return files
}

// BenchmarkParseCorpus parses the corpus files round-robin on every CPU; one op is one report.
func BenchmarkParseCorpus(b *testing.B) {
	files := benchCorpus(b)
	var size int64
	for _, f := range files {
		size += int64(len(f.data))
	}
	b.SetBytes(size / int64(len(files)))
	b.ReportAllocs()
	var next, records atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var n int64
		for pb.Next() {
			f := files[next.Add(1)%int64(len(files))]
			rep, err := ParseBytes(f.data, Limits{})
			if err != nil || len(rep.Records) != f.records {
				b.Errorf("%s: %v", f.name, err)
				return
			}
			n += int64(len(rep.Records))
		}
		records.Add(n)
	})
	s := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N)/s, "reports/s")
	b.ReportMetric(float64(records.Load())/s, "records/s")
	b.Logf("%d corpus files", len(files))
}

// BenchmarkParseLarge parses parsedmarc's 2,286-record sample: on every CPU, on one, and
// streamed through a Decoder from a reader.
func BenchmarkParseLarge(b *testing.B) {
	dir, _ := corpus.ForTest(b)
	data, err := os.ReadFile(filepath.Join(dir, "parsedmarc/samples/aggregate/!large-example.com!1711897200!1711983600.xml"))
	if err != nil {
		b.Fatal(err)
	}
	const want = 2286
	check := func(b *testing.B, rep *Report, err error) {
		if err != nil || len(rep.Records) != want {
			b.Fatalf("got %v records, err %v", rep, err)
		}
	}
	report := func(b *testing.B) {
		b.ReportMetric(float64(b.N)*want/b.Elapsed().Seconds(), "records/s")
	}
	b.Run("parallel", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				rep, err := ParseBytes(data, Limits{})
				check(b, rep, err)
			}
		})
		report(b)
	})
	b.Run("serial", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			rep, err := ParseBytes(data, Limits{})
			check(b, rep, err)
		}
		report(b)
	})
	b.Run("stream", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			d := NewDecoder(bytes.NewReader(data), Limits{})
			if _, err := d.Header(); err != nil {
				b.Fatal(err)
			}
			n, err := 0, error(nil)
			for ; err == nil; n++ {
				_, err = d.Next()
			}
			if n-1 != want {
				b.Fatalf("streamed %d records", n-1)
			}
		}
		report(b)
	})
}
