// Reads MCAP files with Foxglove's own indexed reader (@mcap/core, the reader Foxglove and
// Lichtblick use) and prints, per file, one JSON line: the time range a viewer derives from
// the chunk indexes (its timeline), the Statistics range, chunks holding no message, and the
// messages actually read back (count and min/max log time, CRCs validated).
//
// usage: node check_mcap.mjs FILE...
import { McapIndexedReader } from "@mcap/core";
import lz4 from "@foxglove/wasm-lz4";
import zstd from "@foxglove/wasm-zstd";
import { open } from "node:fs/promises";

await lz4.isLoaded;
await zstd.isLoaded;
const decompressHandlers = {
  lz4: (data, size) => lz4(data, Number(size)),
  zstd: (data, size) => zstd.decompress(data, Number(size)),
};

async function check(path) {
  const fh = await open(path, "r");
  const size = BigInt((await fh.stat()).size);
  const readable = {
    size: async () => size,
    read: async (offset, length) => {
      const buf = new Uint8Array(Number(length));
      await fh.read(buf, 0, Number(length), Number(offset));
      return buf;
    },
  };
  try {
    const r = await McapIndexedReader.Initialize({ readable, decompressHandlers });
    let chunkStart = null;
    let chunkEnd = null;
    let emptyChunks = 0;
    for (const c of r.chunkIndexes) {
      // what Lichtblick does: the timeline starts at the smallest chunk start
      if (chunkStart === null || c.messageStartTime < chunkStart) chunkStart = c.messageStartTime;
      if (chunkEnd === null || c.messageEndTime > chunkEnd) chunkEnd = c.messageEndTime;
      if (c.messageIndexOffsets.size === 0) emptyChunks += 1;
    }
    let n = 0;
    let minLog = null;
    let maxLog = null;
    for await (const m of r.readMessages({ validateCrcs: true })) {
      n += 1;
      if (minLog === null || m.logTime < minLog) minLog = m.logTime;
      if (maxLog === null || m.logTime > maxLog) maxLog = m.logTime;
    }
    const s = r.statistics;
    return {
      path,
      ok: true,
      chunks: r.chunkIndexes.length,
      empty_chunks: emptyChunks,
      chunk_start: chunkStart?.toString() ?? null,
      chunk_end: chunkEnd?.toString() ?? null,
      stats_start: s ? s.messageStartTime.toString() : null,
      stats_end: s ? s.messageEndTime.toString() : null,
      stats_messages: s ? s.messageCount.toString() : null,
      messages_read: n,
      read_start: minLog?.toString() ?? null,
      read_end: maxLog?.toString() ?? null,
      topics: [...new Set([...r.channelsById.values()].map((c) => c.topic))].sort(),
    };
  } catch (e) {
    return { path, ok: false, error: String(e) };
  } finally {
    await fh.close();
  }
}

for (const p of process.argv.slice(2)) {
  console.log(JSON.stringify(await check(p)));
}
