"""`ragkit ingest`, `ragkit search`, `ragkit bench validate` (the other `bench` commands: bench_cmds.py)."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UsageError
from .group import echo_json, main
from .options import CHUNKING, INGEST, RETRIEVAL, embed_batches, help_defaults, setting
from .progress import TerminalProgress


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=str))
@click.option("--index", "index_dir", required=True, type=click.Path(), help="Index directory (created if new).")
@setting("--embed-model", of=INGEST, help="Bundled embedding model name or a local sentence-transformers directory.")
@setting("--chunk-size", of=CHUNKING, type=int, help="Chunk size in the embedding model's tokens.")
@setting("--chunk-overlap", of=CHUNKING, type=int, help="Overlap between chunks, in tokens.")
@click.option("--dense-index", type=click.Choice(["flat", "hnsw", "ivf"]), default=None,
              help="FAISS index type: exact flat inner product, or HNSW/IVF for large corpora. "
                   "[default: an existing index's own; flat for a new one]")
@help_defaults("--batch-size", default=None, type=int, values=embed_batches,
               help="Embedding batch size. [default: {cpu}; {cuda} when the torch backend runs on CUDA]")
@click.option("--embed-backend", type=click.Choice(["torch", "onnx", "onnx-int8"]), default=None,
              help="Run the embedding model with sentence-transformers (torch) or ONNX Runtime (onnx, onnx-int8: "
                   "about 2x faster on a CPU). [default: an existing index's own; for a new one onnx-int8, "
                   "or torch when CUDA is available]")
@click.option("--sync", is_flag=True,
              help="Make the index hold exactly PATHS: drop files indexed earlier from anywhere else.")
@setting("--max-file-chunks", of=INGEST, name="max_chunks_per_file", type=int,
         help="Index at most this many chunks of one file (a note names any file cut short).")
@help_defaults("--device", type=click.Choice(["cpu", "cuda", "auto"]), default=None, values=embed_batches,
               help="Where the torch backend embeds: cuda runs sentence-transformers in fp16 with batches of "
                    "{cuda} (unless --batch-size is given). [default: auto, cuda when available]")
@click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
              help="Embed on a Ray actor pool (pip install 'ragkit[ray]'): a local Ray, or ADDRESS such as "
                   "ray://head:10001. Put it after PATHS, or write --ray=ADDRESS.")
@setting("--ray-actors", of=INGEST, type=int, help="Embedding actors in the Ray pool.")
@setting("--ray-cpus", of=INGEST, type=float,
         help="CPUs per Ray actor (Ray sets OMP_NUM_THREADS from it).")
@click.option("--store", type=click.Choice(["faiss", "milvus"]), default=None,
              help="Where chunks live: FAISS + bm25s files in the index directory, or a Milvus collection "
                   "(milvus-lite or a server). [default: an existing index's own; for a new one faiss]")
@click.option("--milvus-uri", default=None,
              help="Milvus store: a milvus-lite .db path or a server URI such as http://HOST:19530. "
                   "[default: milvus.db inside the index directory]")
@click.option("--milvus-token", default=None, envvar="RAGKIT_MILVUS_TOKEN", show_envvar=True,
              help="Milvus server token (user:password or an API key); never written to the index.")
@click.option("--milvus-analyzer", type=click.Choice(["ragkit", "jieba"]), default="ragkit", show_default=True,
              help="Milvus store, new index: BM25 over ragkit's own words (the FAISS store's, written beside the "
                   "text; same recall), or Milvus's jieba analyzer over the text (other writers need no ragkit).")
@click.option("--compact", is_flag=True,
              help="FAISS store: rebuild the whole index now, merging its delta segment (an ingest that changes "
                   "few files writes one; the first ingest past 10% of the index merges it by itself).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def ingest(paths, index_dir, embed_model, chunk_size, chunk_overlap, dense_index, batch_size, embed_backend,
           sync, max_file_chunks, device, ray_address, ray_actors, ray_cpus, store, milvus_uri, milvus_token,
           milvus_analyzer, compact, as_json):
    """Build or update a hybrid (FAISS + BM25) index from documents.

    PATHS are files or folders (walked recursively): .txt .md .html .pdf .docx .csv .jsonl.
    Re-running adds new files, re-embeds changed ones and drops those deleted from disk; files
    from other folders stay unless --sync. The first folder names its files by their relative
    path, later ones by FOLDER/relative path. Links out of a folder are not followed.
    """
    from ..index import IngestConfig
    from ..index import ingest as run_ingest
    from ..ingest.chunking import ChunkingConfig

    try:
        config = IngestConfig(
            embed_model=embed_model,
            chunking=ChunkingConfig(chunk_size=chunk_size, chunk_overlap=chunk_overlap),
            dense_index=dense_index,
            batch_size=batch_size,
            embed_backend=embed_backend,
            max_chunks_per_file=max_file_chunks,
            device=device,
            ray=ray_address,
            ray_actors=ray_actors,
            ray_cpus=ray_cpus,
            store=store,
            milvus_uri=milvus_uri,
            milvus_token=milvus_token,
            milvus_analyzer=milvus_analyzer,
            compact=compact,
        )
    except ValueError as e:
        raise UsageError(str(e)) from None
    summary = run_ingest(list(paths), index_dir, config, progress=TerminalProgress(), sync=sync)
    if as_json:
        echo_json(summary.to_dict())
    else:
        s = summary
        click.echo(f"Index {printable(s.index)}: {s.chunks} chunks from {s.files_seen - len(s.skipped)} files "
                   f"in {s.seconds:.1f}s")
        click.echo(
            f"  files: {s.files_added} added, {s.files_changed} changed, {s.files_unchanged} unchanged, "
            f"{s.files_deleted} deleted, {len(s.skipped)} skipped; {s.chunks_embedded} chunks embedded; "
            + (f"version {s.version} is live" if s.version_written else "nothing changed, no new version written")
        )
        if s.delta:
            click.echo(f"  delta segment: {s.delta['chunks']} chunks from {s.delta['files']} files and "
                       f"{s.delta['tombstones']} replaced rows over a base of {s.delta['base_chunks']} "
                       "(merged by --compact, or by itself past 10% of the base)")
        for path, note in s.notes:
            click.echo(f"  note {printable(path)}: {printable(note)}", err=True)
        for path, reason in s.skipped:
            click.echo(f"  skipped {printable(path)}: {printable(reason)}", err=True)
        from ..index.faiss.writer import dense_index_hint
        from ..index.manifest import read_current, read_manifest
        from ..index.registry import store_of

        live = read_current(Path(index_dir))
        manifest = read_manifest(live) if live else {}  # read once: the store and the index type
        if hint := dense_index_hint(s.chunks, store_of(Path(index_dir), None, manifest),
                                    manifest.get("dense_index", "flat")):
            click.echo(f"  hint: {hint}", err=True)
    if summary.skipped:
        raise SystemExit(3)  # the index was updated, but not with every file


def printable(text: str) -> str:
    """One line whatever a file name holds: newlines and other control characters escaped."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


@main.command()
@click.argument("query")
@click.option("--index", "index_dir", envvar="RAGKIT_INDEX", default=".ragkit/demo-index", show_default=True,
              type=click.Path(), help="Index directory built by 'ragkit ingest' (or set RAGKIT_INDEX).")
@setting("-k", "k", of=RETRIEVAL, type=int, help="Number of chunks to return.")
@setting("--mode", of=RETRIEVAL, type=click.Choice(["dense", "bm25", "hybrid"]),
         help="Retrieval: dense vectors, BM25 keywords, or both fused.")
@click.option("--embed-model", default=None, help="Refuse to search unless the index was built with this model.")
@click.option("--json", "as_json", is_flag=True, help="Print hits as JSON.")
def search(query, index_dir, k, mode, embed_model, as_json):
    """Show the chunks an index retrieves for QUERY."""
    from ..index import Index

    index = Index.open(index_dir, embed_model=embed_model)
    hits = index.search(query, k=k, mode=mode)
    if as_json:
        echo_json({"query": query, "hits": [h.to_dict() for h in hits]})
        return
    if not hits:
        click.echo("No results.")
    for h in hits:
        where = printable(h.source) + (f" p.{h.page}" if h.page else "") + f" [{h.start}:{h.end}]"
        click.secho(f"{h.rank}. {where}  score={h.score:.3f}", bold=True)
        text = " ".join(h.text.split())
        click.echo(f"   {text[:300]}{'…' if len(text) > 300 else ''}")


@main.group()
def bench():
    """Bench files: one question per line in JSONL."""


@bench.command("validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--general", is_flag=True,
              help="A general bench (closed-book questions about the world): items may have empty sources.")
@click.option("--json", "as_json", is_flag=True, help="Print the count and the problems as JSON.")
def bench_validate(file, general, as_json):
    """Check a bench file and report malformed lines with their numbers, and count items by review
    status (draft, accepted, rejected)."""
    from ..eval.bench import status_counts, validate_bench

    valid, errors = validate_bench(file, general)
    statuses = status_counts(file)
    if as_json:
        echo_json({"file": file, "items": valid, "statuses": statuses,
                   "errors": [{"line": n, "problem": p} for n, p in errors]})
    else:
        for n, p in errors:
            click.echo(f"{file}:{n}: {p}", err=True)
        by_status = ", ".join(f"{k} {v}" for k, v in statuses.items())
        click.echo(f"{valid} valid items, {len(errors)} problems" + (f" (by status: {by_status})" if by_status else ""))
    if errors:
        raise SystemExit(1)
