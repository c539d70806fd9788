#!/usr/bin/env python3
"""Tests of arch-check.py on tiny source trees: python3 .ci/test_arch_check.py"""

import importlib.util
import io
import os
import subprocess
import sys
import tempfile
import textwrap
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "arch-check.py")
_spec = importlib.util.spec_from_file_location("arch_check", SCRIPT)
arch = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(arch)


def tree(root, files):
    """Write `files` ({relative path: source}) under `root`."""
    for rel, src in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(textwrap.dedent(src))


class Cycles(unittest.TestCase):
    def cycles(self, files):
        """[(parent, members)] found in a crate made of `files`."""
        with tempfile.TemporaryDirectory() as d:
            tree(d, files)
            return [(p, m) for p, m, _, _ in arch.Crate(d).cycles()]

    def test_two_modules_importing_each_other(self):
        found = self.cycles(
            {
                "lib.rs": "mod a;\nmod b;\n",
                "a.rs": "use crate::b::B;\npub struct A;\n",
                "b.rs": "pub struct B;\nfn f() { let _ = crate::a::A; }\n",
            }
        )
        self.assertEqual(found, [((), [("a",), ("b",)])])

    def test_a_longer_circle(self):
        found = self.cycles(
            {
                "lib.rs": "mod a; mod b; mod c; mod d;",
                "a.rs": "use crate::b::B;",
                "b.rs": "use crate::c::C;",
                "c.rs": "use crate::a::A;\nuse crate::d::D;",
                "d.rs": "pub struct D;",
            }
        )
        self.assertEqual(found, [((), [("a",), ("b",), ("c",)])])

    def test_no_cycle_in_a_chain(self):
        found = self.cycles(
            {
                "lib.rs": "mod a; mod b; mod c;",
                "a.rs": "use crate::b::B;",
                "b.rs": "use crate::c::C;",
                "c.rs": "use std::fmt;",
            }
        )
        self.assertEqual(found, [])

    def test_parent_and_child_are_not_a_cycle(self):
        found = self.cycles(
            {
                "lib.rs": "pub mod meta;\n",
                "meta/mod.rs": "mod redb;\npub use self::redb::Store;\nfn f() { redb::open(); }\npub trait Meta {}\n",
                "meta/redb/mod.rs": "use super::Meta;\nuse crate::meta::Meta as M;\npub struct Store;\n",
            }
        )
        self.assertEqual(found, [])

    def test_a_grouped_use(self):
        found = self.cycles(
            {
                "lib.rs": "mod a; mod b; mod c;",
                "a.rs": "use crate::{b, c::{d::{self, D}, e}};",
                "b.rs": "",
                "c/mod.rs": "pub mod d; pub mod e;",
                "c/d.rs": "use crate::a;",
                "c/e.rs": "",
            }
        )
        self.assertEqual(found, [((), [("a",), ("c",)])])

    def test_the_use_tree_parser(self):
        self.assertEqual(
            arch.parse_use_tree("crate::{a, b::c, d::{self, e as f}, g::*};"),
            [["crate", "a"], ["crate", "b", "c"], ["crate", "d"], ["crate", "d", "e"], ["crate", "g"]],
        )
        self.assertEqual(arch.parse_use_tree("::ext::x;"), [["", "ext", "x"]])

    def test_a_nested_module_makes_its_ancestors_depend(self):
        # a::x uses b, b uses a::y: a and b import each other.
        with tempfile.TemporaryDirectory() as d:
            tree(
                d,
                {
                    "lib.rs": "mod a; mod b;",
                    "a/mod.rs": "mod x; mod y;",
                    "a/x.rs": "use super::super::b::B;",
                    "a/y.rs": "pub struct Y;",
                    "b.rs": "fn f() -> crate::a::y::Y { todo!() }",
                },
            )
            (parent, members, edges, circle), *rest = arch.Crate(d).cycles()
        self.assertEqual((parent, members, rest), ((), [("a",), ("b",)], []))
        self.assertEqual(circle, [("a",), ("b",), ("a",)])
        (x, y, _), *_ = edges[(("a",), ("b",))]
        self.assertEqual((x, y), (("a", "x"), ("b",)))

    def test_siblings_below_a_parent(self):
        found = self.cycles(
            {
                "lib.rs": "mod app;",
                "app/mod.rs": "mod send; mod fetch;",
                "app/send.rs": "use super::fetch::F;",
                "app/fetch.rs": "use crate::app::send::S;",
            }
        )
        self.assertEqual(found, [(("app",), [("app", "fetch"), ("app", "send")])])

    def test_super_inside_an_inline_module(self):
        # Inside a::inner, super::super is the crate root.
        found = self.cycles(
            {
                "lib.rs": "mod a; mod b;",
                "a.rs": "mod inner {\n    mod deeper { }\n    use super::super::b::B;\n}\npub struct A;",
                "b.rs": "use crate::a::A;",
            }
        )
        self.assertEqual(found, [((), [("a",), ("b",)])])

    def test_a_missing_submodule_counts_as_its_parent(self):
        # crate::a::b::X with no module a::b depends on a.
        found = self.cycles(
            {
                "lib.rs": "mod a; mod c;",
                "a.rs": "pub mod b { pub struct X; }\nuse crate::c::C;",
                "c.rs": "fn f(_: crate::a::nothing::X) {}",
            }
        )
        self.assertEqual(found, [((), [("a",), ("c",)])])

    def test_a_root_reexport_stands_for_its_module(self):
        found = self.cycles(
            {
                "lib.rs": "pub mod a;\npub mod b;\npub use b::Thing;\n",
                "a.rs": "use crate::Thing;",
                "b.rs": "pub struct Thing;\nfn f() { crate::a::g() }",
            }
        )
        self.assertEqual(found, [((), [("a",), ("b",)])])

    def test_tests_comments_and_strings_are_not_references(self):
        found = self.cycles(
            {
                "lib.rs": "mod a; mod b;",
                "a.rs": "use crate::b::B;",
                "b.rs": """\
                    //! See [`crate::a::A`].
                    /* crate::a::A /* nested */ crate::a::A */
                    const S: &str = "crate::a::A";
                    const R: &str = r#"use crate::a::A;"#;
                    const C: char = '"';
                    fn f<'a>(x: &'a str) -> &'a str { x }
                    #[cfg(test)]
                    mod tests {
                        use crate::a::A;
                        fn g() { let _ = "}"; }
                    }
                    #[cfg(test)]
                    mod helpers;
                    """,
                "b/helpers.rs": "use crate::a::A;",
            }
        )
        self.assertEqual(found, [])

    def test_the_report_names_the_modules_and_fails(self):
        with tempfile.TemporaryDirectory() as d:
            tree(d, {"lib.rs": "mod a; mod b;", "a.rs": "use crate::b::B;", "b.rs": "use crate::a::A;"})
            out = io.StringIO()
            self.assertEqual(arch.check_cycles([d], out=out), 1)
        text = out.getvalue()
        self.assertIn("modules import each other in a cycle (under crate): a, b", text)
        self.assertIn("circle: a -> b -> a", text)
        self.assertIn("a.rs:1: use crate::b::B;", text)


class Confine(unittest.TestCase):
    FILES = {
        "server/src/lib.rs": "pub mod meta;\nmod store;\n",
        "server/src/meta/mod.rs": "mod redb;\npub use self::redb::Store;\n// redb:: in a comment\n",
        "server/src/meta/redb/mod.rs": "use redb::Database;\npub struct Store(redb::Database);\n",
        "server/src/clean.rs": 'use crate::meta::redb::Store;\nconst S: &str = "redb::";\n',
    }

    def run_confine(self, extra):
        with tempfile.TemporaryDirectory() as d:
            tree(d, {**self.FILES, **extra})
            out = io.StringIO()
            cwd = os.getcwd()
            os.chdir(d)
            try:
                rc = arch.check_confine("redb", "server/src/meta/redb", ["server/src"], out=out)
            finally:
                os.chdir(cwd)
            return rc, out.getvalue()

    def test_confined_uses_pass(self):
        self.assertEqual(self.run_confine({}), (0, ""))

    def test_a_use_outside_is_a_violation(self):
        rc, out = self.run_confine(
            {
                "server/src/store.rs": "use std::fmt;\nuse redb::{Database, TableDefinition};\n",
                "server/src/error.rs": "impl From<::redb::Error> for E {}\n",
                "server/src/other.rs": "extern crate redb;\n",
            }
        )
        self.assertEqual(rc, 1)
        self.assertIn("server/src/store.rs: uses the redb crate outside server/src/meta/redb (line 2)", out)
        self.assertIn("server/src/error.rs: uses the redb crate outside server/src/meta/redb (line 1)", out)
        self.assertIn("server/src/other.rs", out)
        self.assertNotIn("clean.rs", out)
        self.assertNotIn("meta/mod.rs", out)


class CommandLine(unittest.TestCase):
    def run_script(self, *args, cwd):
        return subprocess.run([sys.executable, SCRIPT, *args], cwd=cwd, capture_output=True, text=True)

    def test_exit_status(self):
        with tempfile.TemporaryDirectory() as d:
            tree(
                d,
                {
                    "bad/lib.rs": "mod a; mod b;",
                    "bad/a.rs": "use crate::b::B;",
                    "bad/b.rs": "use crate::a::A;",
                    "good/lib.rs": "mod a; mod b;",
                    "good/a.rs": "use crate::b::B;",
                    "good/b.rs": "",
                },
            )
            bad = self.run_script("cycles", "good", "bad", cwd=d)
            self.assertEqual(bad.returncode, 1, bad.stderr)
            self.assertIn("bad: modules import each other in a cycle (under crate): a, b", bad.stdout)
            self.assertNotIn("good", bad.stdout)
            good = self.run_script("cycles", "good", cwd=d)
            self.assertEqual((good.returncode, good.stdout), (0, ""))
            self.assertEqual(self.run_script("cycles", "missing", cwd=d).returncode, 2)
            self.assertEqual(self.run_script("confine", "redb", "x", "good", cwd=d).returncode, 0)
            self.assertEqual(self.run_script(cwd=d).returncode, 2)


if __name__ == "__main__":
    unittest.main()
