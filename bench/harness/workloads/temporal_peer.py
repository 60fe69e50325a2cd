"""The end-to-end workloads written directly with temporalio, on the harness's dev server.

The same shapes as the engine's (``flows``): a one-action workflow and the ten-step one
(six activities, an ``if``, a signal in place of the submitted event), sequential and 10 in
flight, each series bounded by a count and a time budget per repetition. The dev server
keeps its store in memory (no fsync), which favours it against the durable backends.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from bench.harness.core import Context, Plot, Section
from bench.harness.workloads.e2e_local import Series
from bench.peers.temporal_direct import OneAction, TenStep, echo, work
from temporalio.client import Client
from temporalio.worker import Worker


async def one(client: Client, queue: str, key: str) -> float:
    start = time.perf_counter()
    result = await client.execute_workflow(OneAction.run, key, id=f"one-{key}",
                                           task_queue=queue)
    elapsed = time.perf_counter() - start
    if result != {"echo": key}:
        raise RuntimeError(f"OneAction returned {result!r}")
    return elapsed


async def ten(client: Client, queue: str, key: str) -> float:
    start = time.perf_counter()
    handle = await client.start_workflow(TenStep.run, {"key": key, "amount": 150},
                                         id=f"ten-{key}", task_queue=queue)
    await handle.signal(TenStep.go, 5)
    result = await handle.result()
    elapsed = time.perf_counter() - start
    if result != {"key": key, "total": 155}:
        raise RuntimeError(f"TenStep returned {result!r}")
    return elapsed


class TemporalPeer:
    key = "temporal-peer"
    title = "Direct temporalio on the same workloads"

    async def run(self, ctx: Context) -> Section:
        if ctx.temporal_address is None:
            return Section(self.key, self.title, "skipped", notes=["No Temporal dev server."])
        section = Section(self.key, self.title)
        client = await Client.connect(ctx.temporal_address)
        queue = f"wfbench-{uuid.uuid4().hex[:8]}"
        budget = ctx.size(3, 1)
        n_one, n_ten, n_batch = ctx.size(100, 5), ctx.size(20, 2), ctx.size(100, 10)
        group = "temporal dev server"
        s_one = Series(group, "temporalio, one action, sequential")
        s_ten = Series(group, "temporalio, ten steps, sequential")
        s_batch = Series(group, "temporalio, one action, 10 in flight")
        async with Worker(client, task_queue=queue, workflows=[OneAction, TenStep],
                          activities=[echo, work]):
            await one(client, queue, "warm")
            await ten(client, queue, "warm")
            for rep in range(ctx.reps):
                for series, fn, n in ((s_one, one, n_one), (s_ten, ten, n_ten)):
                    latencies: list[float] = []
                    start = time.perf_counter()
                    for i in range(n):
                        key = f"{rep}-{i}-{uuid.uuid4().hex[:6]}"
                        latencies.append(await fn(client, queue, key))
                        if i >= 2 and time.perf_counter() - start > budget:
                            break
                    series.add(len(latencies), time.perf_counter() - start, latencies)
                start = time.perf_counter()
                done = 0
                while done < n_batch and (done == 0 or time.perf_counter() - start < budget):
                    tag = uuid.uuid4().hex[:6]
                    await asyncio.gather(*(one(client, queue, f"b{rep}-{done}-{i}-{tag}")
                                           for i in range(10)))
                    done += 10
                s_batch.add(done, time.perf_counter() - start)
                ctx.progress(f"temporal-peer rep {rep + 1}: one {s_one.rates[-1]:.1f}/s, "
                             f"ten {s_ten.rates[-1]:.1f}/s, "
                             f"10 in flight {s_batch.rates[-1]:.1f}/s")
        figures = s_one.figures() + s_ten.figures() + s_batch.figures()
        section.figures += figures
        section.plots.append(Plot("temporal-peer", "Direct temporalio, runs/s", "runs/s",
                                  [("one", figures[0]), ("ten", figures[3]),
                                   ("one x10", figures[6])]))
        section.notes.append(
            "Worker in the harness's process (workflow sandbox on, as by default), client "
            "and worker on one connection to the dev server the harness started.")
        return section


WORKLOAD = TemporalPeer()
