package unwrap

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/vigilhq/vigil/pkg/corpus"
)

func loadCorpus(b *testing.B, keep func(corpus.Entry) bool) [][]byte {
	b.Helper()
	dir, entries := corpus.ForTest(b)
	var files [][]byte
	for _, e := range entries {
		if !keep(e) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.RelPath()))
		if err != nil {
			b.Fatal(err)
		}
		files = append(files, data)
	}
	return files
}

func drainParts(p Part) error {
	_, err := io.Copy(io.Discard, p.Body)
	return err
}

// BenchmarkWalkCorpus walks every corpus file, reading every part to its end; one op is one file.
func BenchmarkWalkCorpus(b *testing.B) {
	files := loadCorpus(b, func(corpus.Entry) bool { return true })
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			data := files[next.Add(1)%int64(len(files))]
			Walk(data, DefaultLimits, drainParts) // many corpus files are rejected on purpose
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "files/s")
}

// BenchmarkGzipOverhead compares Walk with a bare gunzip of the same corpus .gz files, to show
// what sniffing and the limits add on top of decompression.
func BenchmarkGzipOverhead(b *testing.B) {
	files := loadCorpus(b, func(e corpus.Entry) bool { return e.Compression == "gz" && e.Kind == "aggregate" })
	b.Run("gunzip", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			zr, err := gzip.NewReader(bytes.NewReader(files[i%len(files)]))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, zr); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("walk", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if err := Walk(files[i%len(files)], DefaultLimits, drainParts); err != nil {
				b.Fatal(err)
			}
		}
	})
}
