"""Links on the machine's own interfaces, for real: a substrate link on two test-made
interfaces (a veth pair in the root namespace) carries the slices' traffic with their
isolation (`vispd check`), and `down` gives both interfaces back as they were (name, MTU,
state, addresses); a run killed between moving an interface and marking it is completed by
`up` and undone by `down`; an interface that is missing, already used or the machine's way
out is refused before anything is built.

Refusals need a default route on the machine: they run vispd inside a test-made namespace
standing for the machine (`nsenter --net`), never touching the real one's routes."""
from __future__ import annotations

import os
import random

import pytest

from conftest import unique_name, vispd
from outside import World, link_state, sh, vispd_in

pytestmark = pytest.mark.root


def topology(tmp_path, name: str, a: str, b: str, extra_link: str = "") -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"""\
name: {name}
asn: 64512
address-space: [198.18.0.0/16]
nodes: [{{name: a}}, {{name: b}}, {{name: c}}]
links:
  - {{between: [a, b], bandwidth: 1G, interfaces: {{a: {a}, b: {b}}}}}
  - {{between: [b, c], bandwidth: 1G{extra_link}}}
slices:
  - {{name: s, bandwidth: 100M}}
  - {{name: t, bandwidth: 100M}}
""")
    return str(path)


@pytest.fixture
def world():
    made = World()
    yield made
    made.close()


def free_host_address() -> str:
    """A /32 from 10.254.0.0/16 that no interface of the machine has."""
    taken = sh("ip", "-4", "-o", "addr").stdout
    while True:
        address = f"10.254.{random.randint(0, 255)}.{random.randint(1, 254)}"
        if f" {address}/" not in taken:
            return address


def test_a_link_on_two_interfaces_carries_slices_and_down_gives_them_back(tmp_path, state_dir, world):
    a, b = world.tag + "a", world.tag + "b"
    world.veth(a, None, b, None)
    sh("ip", "link", "set", "dev", a, "mtu", "1400")
    world.address(None, a, f"{free_host_address()}/32", up=True)  # a: up, an address; b: down, none
    before = {a: link_state(a), b: link_state(b)}
    name = unique_name("tr")
    path = topology(tmp_path, name, a, b)
    try:
        vispd("up", path)
        assert sh("ip", "link", "show", "dev", a, check=False).returncode != 0  # moved away
        assert "to-b" in sh("ip", "-n", f"vispd.{name}.a", "-br", "link").stdout
        report = vispd("check", name)
        assert "reach s: 6/6 pairs ok" in report.stdout and "isolation s -> t: ok" in report.stdout, report.stdout
        assert vispd("up", path).stdout.strip() == f"{name}: no changes"
        assert f"interface {a}: borrowed as vispd.{name}.a/to-b" in vispd("status", name).stdout
        records = os.listdir(state_dir / name / "borrowed")
        assert sorted(records) == [f"device.vispd.{name}.a.to-b.json", f"device.vispd.{name}.b.to-a.json"]
    finally:
        vispd("down", name, check=False)
    assert {a: link_state(a), b: link_state(b)} == before
    assert not (state_dir / name).exists()


def test_a_run_killed_before_marking_is_completed_by_up_and_undone_by_down(tmp_path, state_dir, world):
    a, b = world.tag + "a", world.tag + "b"
    world.veth(a, None, b, None)
    world.address(None, a, f"{free_host_address()}/32", up=True)
    before = {a: link_state(a), b: link_state(b)}
    name = unique_name("tr")
    path = topology(tmp_path, name, a, b)
    try:
        vispd("up", path)
        # what a run killed between moving an interface and marking it leaves: no marker
        sh("ip", "-n", f"vispd.{name}.a", "link", "set", "dev", "to-b", "alias", "")
        assert "to create" in vispd("up", path).stdout  # borrowed again, i.e. just marked
        assert "reach s: 6/6 pairs ok" in vispd("check", name).stdout
        sh("ip", "-n", f"vispd.{name}.b", "link", "set", "dev", "to-a", "alias", "")
    finally:
        vispd("down", name, check=False)  # unmarked, it is given back before its namespace goes
    assert {a: link_state(a), b: link_state(b)} == before


def test_missing_used_and_way_out_interfaces_are_refused_before_anything_is_built(tmp_path, state_dir, world):
    machine = world.ns("m")
    tag = world.tag
    for x, y in (("a", "b"), ("c", "d"), ("e", "f"), ("g", "h")):
        world.veth(tag + x, machine, tag + y, machine)
    world.address(machine, tag + "c", "10.9.0.2/24")
    sh("ip", "-n", machine, "route", "add", "default", "via", "10.9.0.1", "dev", tag + "c")
    sh("ip", "-n", machine, "link", "add", tag + "br", "type", "bridge")
    sh("ip", "-n", machine, "link", "set", "dev", tag + "b", "master", tag + "br")
    sh("ip", "-n", machine, "link", "set", "dev", tag + "e", "alias", "vispd:other d=1")
    name = unique_name("tr")
    path = topology(tmp_path, name, tag + "a", tag + "b",
                    f", interfaces: {{b: {tag}c, c: {tag}x}}")
    refused = vispd_in(machine, "up", path, check=False)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    said = refused.stderr
    assert f"interface {tag}b is already used: it is a port of {tag}br" in said
    assert f"interface {tag}c carries this machine's default route" in said
    assert f"interface {tag}x does not exist on this machine" in said
    assert not [n for n in os.listdir("/run/netns") if n.startswith(f"vispd.{name}.")]  # nothing half-built
    assert not (state_dir / name).exists() and not os.path.exists(f"/run/vispd/{name}")  # no trace at all
    other_name = unique_name("tr")
    other = topology(tmp_path, other_name, tag + "e", tag + "g")
    marked = vispd_in(machine, "up", other, check=False)
    assert marked.returncode == 1 and f"interface {tag}e is already used: it carries 'other''s vispd marker" in marked.stderr
    assert link_state(tag + "a", machine)["name"] == tag + "a"  # nothing was moved
    assert not os.path.exists(f"/run/vispd/{other_name}")
