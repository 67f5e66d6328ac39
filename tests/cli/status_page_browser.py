#!/usr/bin/env python3
"""Drives headless Chromium through the DevTools protocol (--remote-debugging-pipe:
NUL-terminated JSON on fds 3/4; no browser download, no npm) to check pgcm's status
page: every node healthy, then after STOP_CMD one node red without a reload; saves
a screenshot. Usage:
  status_page_browser.py URL NODES STOP_NODE STOP_CMD SCREENSHOT [IDLE_SECONDS SERVE_PID]
NODES: comma-separated ids. IDLE_SECONDS > 0: once every node shows healthy, measure
SERVE_PID's CPU over that many seconds with the page open and print it (no assertion)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import base64

CHROMIUM = os.environ.get("PGCM_CHROMIUM", "/usr/bin/chromium")


class Browser:
    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="pgcm-chromium-")
        to_browser_r, self.to_browser = os.pipe()
        self.from_browser, from_browser_w = os.pipe()
        # Chromium reads commands from fd 3 and writes to fd 4.
        # (subprocess closes every fd but pass_fds after preexec_fn: keep 3 and 4.)
        def setup():
            a, b = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(a, 3)
            os.dup2(b, 4)
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-dev-shm-usage", "--remote-debugging-pipe",
             "--window-size=1280,800", "--user-data-dir=" + self.profile, "about:blank"],
            preexec_fn=setup, pass_fds=(3, 4),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.buf = b""
        self.next_id = 0
        self.session = None

    def send(self, method, params=None, session=True, timeout=30):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self.to_browser, json.dumps(msg).encode() + b"\0")
        deadline = time.time() + timeout
        while time.time() < deadline:
            reply = self.read_message(deadline)
            if reply is not None and reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
        raise TimeoutError(f"{method}: no answer in {timeout} s")

    def read_message(self, deadline):
        import select
        while b"\0" not in self.buf:
            left = deadline - time.time()
            if left <= 0:
                return None
            r, _, _ = select.select([self.from_browser], [], [], left)
            if not r:
                return None
            chunk = os.read(self.from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\0", 1)
        return json.loads(raw)

    def open(self, url):
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False,
                           timeout=45)
        attached = self.send("Target.attachToTarget",
                             {"targetId": target["targetId"], "flatten": True}, session=False)
        self.session = attached["sessionId"]
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.send("Page.navigate", {"url": url})

    def eval(self, expr):
        r = self.send("Runtime.evaluate", {"expression": expr, "returnByValue": True})
        return r.get("result", {}).get("value")

    def screenshot(self, path):
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        try:
            self.send("Browser.close", session=False, timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


CARDS = ("JSON.stringify(Object.fromEntries([...document.querySelectorAll('[data-node]')]"
         ".map(e => [e.dataset.node, e.dataset.status])))")


def wait_until(b, what, pred, timeout):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = json.loads(b.eval(CARDS) or "{}")
        if pred(last):
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s; the page shows {last}")


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def main():
    url, nodes, stop_node, stop_cmd, shot = sys.argv[1:6]
    idle_seconds = int(sys.argv[6]) if len(sys.argv) > 6 else 0
    serve_pid = int(sys.argv[7]) if len(sys.argv) > 7 else 0
    nodes = nodes.split(",")
    # A loaded machine (the ASan suite) sometimes leaves a fresh headless
    # chromium without an answer to its first command: start it once more.
    for attempt in (1, 2):
        b = Browser()
        try:
            b.open(url)
            break
        except TimeoutError as e:
            b.close()
            if attempt == 2:
                raise
            print(f"chromium did not answer ({e}); starting it again", file=sys.stderr)
    try:
        shown = wait_until(b, "every node listed healthy",
                           lambda s: all(s.get(n) == "healthy" for n in nodes), 30)
        print("page shows", shown)
        if sorted(shown) != sorted(nodes):
            raise AssertionError(f"the page lists {sorted(shown)}, expected {sorted(nodes)}")
        if idle_seconds > 0 and serve_pid > 0:
            hz = os.sysconf("SC_CLK_TCK")
            t0, c0 = time.time(), cpu_ticks(serve_pid)
            time.sleep(idle_seconds)
            t1, c1 = time.time(), cpu_ticks(serve_pid)
            print(f"idle cpu of pgcm serve with the page open (every node healthy): "
                  f"{100.0 * (c1 - c0) / hz / (t1 - t0):.2f} % of a core over {t1 - t0:.0f} s")
        # Marks this document: a reload would lose the mark.
        b.eval("window.pgcmTestMark = 42")
        subprocess.run(stop_cmd, shell=True, check=True)
        shown = wait_until(b, f"{stop_node} shown unhealthy",
                           lambda s: s.get(stop_node) == "unhealthy", 60)
        print("after stopping", stop_node, "page shows", shown)
        if b.eval("window.pgcmTestMark") != 42:
            raise AssertionError("the page was reloaded")
        red = b.eval(f"getComputedStyle(document.querySelector('[data-node=\"{stop_node}\"]'))"
                     ".borderLeftColor")
        print(stop_node, "card border", red)
        if red != "rgb(207, 34, 46)":
            raise AssertionError(f"{stop_node}'s card is not red: {red}")
        # Only the event stream fills the event list (the periodic /api/health
        # refresh does not): the change came live.
        rows = b.eval("[...document.querySelectorAll('#events tr')].map(r => r.innerText).join('\\n')")
        if not any(stop_node in r and "node:health" in r and "unhealthy" in r
                   for r in (rows or "").split("\n")):
            raise AssertionError(f"no node:health event for {stop_node} in the event list: {rows!r}")
        others = [n for n in nodes if n != stop_node]
        if any(shown.get(n) != "healthy" for n in others):
            raise AssertionError(f"other nodes changed too: {shown}")
        time.sleep(0.5)  # let the event list draw
        b.screenshot(shot)
        print("screenshot", shot)
    finally:
        b.close()


if __name__ == "__main__":
    try:
        main()
    except (AssertionError, RuntimeError, TimeoutError) as e:
        print("FAIL:", e, file=sys.stderr)
        sys.exit(1)
