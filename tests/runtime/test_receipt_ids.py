"""Receipt ids come from the OS's CSPRNG in blocks: unique, well-formed, and never repeated by
a forked child (which inherits the parent's block)."""

from __future__ import annotations

import os
import re

from dse._ids import random_hex


def test_ids_are_hex_of_the_asked_length_and_do_not_repeat_across_blocks() -> None:
    ids = [random_hex(16) for _ in range(2_000)]  # several 4 KiB blocks
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert len(random_hex(5000)) == 10_000  # more than a block at once


def test_a_forked_child_draws_fresh_ids_not_its_parents_next_ones() -> None:
    random_hex(16)  # the parent now holds a block with unread ids in it
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        os.write(write, random_hex(16).encode())
        os._exit(0)
    os.close(write)
    child_id = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    parent_next = random_hex(16)
    assert re.fullmatch(r"[0-9a-f]{32}", child_id)
    assert child_id != parent_next
