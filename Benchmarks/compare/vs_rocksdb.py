#!/usr/bin/env python3
"""Idem vs RocksDB and LevelDB, embedded, side by side in one run.

The same workload for all three, one thread: N random 16-byte keys with
64-byte values (no sync; bloom filters 10 bits/key for the peers), then N
random gets of present keys, N gets of absent keys, close, reopen. Idem runs
through `idem-workloads kv`, the peers through kv_driver.cc (compiled here
against Debian's librocksdb-dev 7.8 and libleveldb-dev 1.23, installed with
apt-get when missing). Prints throughput per engine and Idem / the better
peer, medians of --runs, plus bytes on disk.

Two more cases, each engine in fresh processes:
- recovery: --recover-keys puts into a write buffer that holds them all,
  the process exits without closing (kill -9 alike; the WAL is in the OS),
  and a new process times the open and checks every key;
- TTL: N keys with expiries spread over 48 hours, flushed; the clock moves
  24 h on; time and disk I/O until the expired half is gone from disk
  ("seconds": unlinked and unreadable; "freed s": Idem's background closes
  of those files done too — when the filesystem frees the blocks).
  Idem runs one maintenance pass (whole expired partitions are unlinked);
  RocksDB a full manual compaction with a compaction filter on the expiry
  (FIFO compaction's ttl goes by file age, which cannot tell these keys
  apart); LevelDB has no way but deleting the keys one by one (n/a).

    Benchmarks/compare/vs_rocksdb.py [--keys 1000000 5000000] [--runs 3] [--recover-keys 500000]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
BENCHMARKS = os.path.dirname(HERE)


def ensure_tools(workdir):
    if subprocess.run(["dpkg", "-s", "librocksdb-dev", "libleveldb-dev"], capture_output=True).returncode != 0:
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "librocksdb-dev", "libleveldb-dev", "g++"], check=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    driver = os.path.join(workdir, "kv_driver")
    subprocess.run(["g++", "-O2", "-std=c++17", "-o", driver, os.path.join(HERE, "kv_driver.cc"), "-lrocksdb", "-lleveldb"],
                   check=True)
    subprocess.run(["swift", "build", "-c", "release", "--product", "idem-workloads"], cwd=BENCHMARKS, check=True,
                   stdout=subprocess.DEVNULL)
    return driver, os.path.join(BENCHMARKS, ".build", "release", "idem-workloads")


def disk_bytes(path):
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)


def run(engine, driver, workloads, directory, keys):
    command = [workloads, "kv", directory, str(keys)] if engine == "idem" else [driver, engine, directory, str(keys)]
    fields = subprocess.run(command, capture_output=True, text=True, check=True, timeout=3600).stdout.split()
    _, n, fill, hit, miss, reopen, found = fields
    assert int(found) == keys, f"{engine}: found {found} of {keys}"
    result = {"fill": keys / float(fill), "get hit": keys / float(hit), "get miss": keys / float(miss),
              "reopen s": float(reopen), "disk MB": disk_bytes(directory) / 1e6}
    shutil.rmtree(directory, ignore_errors=True)
    return result


def run_recovery(engine, driver, workloads, directory, keys):
    def command(mode):
        return [workloads, mode, directory, str(keys)] if engine == "idem" else [driver, engine, mode, directory, str(keys)]
    subprocess.run(command("crash"), capture_output=True, check=True, timeout=3600)
    fields = subprocess.run(command("recover"), capture_output=True, text=True, check=True, timeout=3600).stdout.split()
    shutil.rmtree(directory, ignore_errors=True)
    assert int(fields[3]) == keys, f"{engine}: recovered {fields[3]} of {keys}"
    return float(fields[2])


def run_ttl(engine, driver, workloads, directory, keys):
    command = [workloads, "ttl", directory, str(keys)] if engine == "idem" else [driver, "rocksdb", "ttl", directory, str(keys)]
    fields = subprocess.run(command, capture_output=True, text=True, check=True, timeout=3600).stdout.split()
    shutil.rmtree(directory, ignore_errors=True)
    _, _, seconds, before, after, read, written, _ = fields[:8]
    # Idem also reports when the dropped files' closes (which free their
    # blocks; a trim on a `discard` mount) finished on its background
    # thread; RocksDB's figure already includes its file deletions.
    freed = fields[8] if len(fields) > 8 else seconds
    return {"seconds": float(seconds), "freed s": float(freed), "before MB": int(before) / 1e6, "after MB": int(after) / 1e6,
            "read MB": int(read) / 1e6, "written MB": int(written) / 1e6}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--recover-keys", type=int, default=500_000)
    parser.add_argument("--skip-kv", action="store_true", help="only the recovery and TTL cases")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="idem-vs-rocksdb-")
    try:
        driver, workloads = ensure_tools(workdir)
        print(f"{'keys':>8} {'metric':10} {'Idem':>12} {'RocksDB':>12} {'LevelDB':>12} {'Idem/best':>9}")
        for keys in ([] if args.skip_kv else args.keys):
            results = {engine: [] for engine in ("idem", "rocksdb", "leveldb")}
            for _ in range(args.runs):
                for engine in results:
                    results[engine].append(run(engine, driver, workloads, os.path.join(workdir, engine), keys))
            for metric in ("fill", "get hit", "get miss", "reopen s", "disk MB"):
                median = {engine: statistics.median(run[metric] for run in runs) for engine, runs in results.items()}
                lower_is_better = metric in ("reopen s", "disk MB")
                best = min(median["rocksdb"], median["leveldb"]) if lower_is_better else max(median["rocksdb"], median["leveldb"])
                ratio = best / median["idem"] if lower_is_better else median["idem"] / best
                unit = "" if lower_is_better else "/s"
                print(f"{keys:>8} {metric:10} {median['idem']:>10.3g}{unit:2} {median['rocksdb']:>10.3g}{unit:2} "
                      f"{median['leveldb']:>10.3g}{unit:2} {ratio:>8.2f}x")
        print("(Idem/best: throughput ratio for fill and gets; for reopen time and disk, how many times less Idem needs)")

        recovery = {engine: statistics.median(run_recovery(engine, driver, workloads, os.path.join(workdir, engine),
                                                           args.recover_keys) for _ in range(args.runs))
                    for engine in ("idem", "rocksdb", "leveldb")}
        best = min(recovery["rocksdb"], recovery["leveldb"])
        print(f"\nrecovery after a crash, {args.recover_keys} keys in the WAL and memtable (open time, s):")
        print(f"  Idem {recovery['idem']:.3f}  RocksDB {recovery['rocksdb']:.3f}  LevelDB {recovery['leveldb']:.3f}"
              f"  Idem/best {recovery['idem'] / best:.2f}x")

        for keys in args.keys:
            ttl = {}
            for engine in ("idem", "rocksdb"):
                runs = [run_ttl(engine, driver, workloads, os.path.join(workdir, engine), keys) for _ in range(args.runs)]
                ttl[engine] = {metric: statistics.median(run[metric] for run in runs) for metric in runs[0]}
            print(f"\nexpired half of {keys} keys gone from disk (medians):")
            print(f"  {'engine':8} {'seconds':>9} {'freed s':>9} {'before MB':>10} {'after MB':>9} {'read MB':>8} {'written MB':>10}")
            for engine, label in (("idem", "Idem"), ("rocksdb", "RocksDB")):
                row = ttl[engine]
                print(f"  {label:8} {row['seconds']:>9.4f} {row['freed s']:>9.4f} {row['before MB']:>10.1f} {row['after MB']:>9.1f} "
                      f"{row['read MB']:>8.1f} {row['written MB']:>10.1f}")
            print(f"  LevelDB  n/a (no expiry: every expired key would need its own delete)")
            print(f"  Idem/RocksDB time {ttl['idem']['seconds'] / ttl['rocksdb']['seconds']:.3f}x")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
