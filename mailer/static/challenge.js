/* The signup proof of work, solved in the reader's browser (the server side and
   the reasons are in mailer/common/challenge.py).

   A challenge is a salt, a SHA-256 digest and a maximum: find the number n,
   0 <= n <= max, with sha256(salt + n) == digest, and post it as `solution`
   beside `challenge`. Nothing leaves the browser but the form itself.

   This one file is both the page script and its Web Worker. Forms it serves:
   - `form[data-challenge]` holding a `.challenge` element with the challenge
     (our subscribe page): solved as soon as the page is ready;
   - `form[data-challenge-url]` (the archive's box, the snippet on other pages of
     the site): asks that URL whether a challenge is due when the reader first
     touches the form, and solves it then.
   A submit before the answer is ready waits for it. A worker must come from the
   page's own origin; elsewhere (the snippet) the work runs on the page in short
   asynchronous steps, which keeps the page responsive. Without Web Crypto (plain
   http:// pages other than localhost) a small SHA-256 below does the hashing. */
(function () {
  "use strict";

  var K = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2]);

  function rotr(x, n) { return (x >>> n) | (x << (32 - n)); }

  // SHA-256 of a short message (FIPS 180-4), only where crypto.subtle is missing.
  function sha256(bytes) {
    var total = ((bytes.length + 9 + 63) >> 6) << 6;
    var block = new Uint8Array(total);
    block.set(bytes);
    block[bytes.length] = 0x80;
    var view = new DataView(block.buffer);
    view.setUint32(total - 4, bytes.length * 8);
    var h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                             0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
    var w = new Uint32Array(64);
    for (var off = 0; off < total; off += 64) {
      var i;
      for (i = 0; i < 16; i++) w[i] = view.getUint32(off + i * 4);
      for (i = 16; i < 64; i++) {
        var s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
        var s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
        w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
      }
      var a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
      for (i = 0; i < 64; i++) {
        var t1 = (k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0;
        var t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) | 0;
        k = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
      }
      h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += k;
    }
    var out = new Uint8Array(32);
    var outView = new DataView(out.buffer);
    for (var j = 0; j < 8; j++) outView.setUint32(j * 4, h[j]);
    return out;
  }

  function fromHex(hex) {
    var out = new Uint8Array(hex.length / 2);
    for (var i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
    return out;
  }

  function same(bytes, target) {
    for (var i = 0; i < 32; i++) if (bytes[i] !== target[i]) return false;
    return true;
  }

  function pause() { return new Promise(function (resolve) { setTimeout(resolve, 0); }); }

  // The number n in [from, to] with sha256(salt + n) == digest, or null.
  async function solve(salt, digest, from, to) {
    var target = fromHex(digest);
    var encoder = new TextEncoder();
    var subtle = self.crypto && self.crypto.subtle;
    var n;
    if (subtle) {
      // Many digests in flight at once: far faster than awaiting them one by one.
      for (var start = from; start <= to; start += 500) {
        var end = Math.min(start + 500, to + 1), jobs = [];
        for (n = start; n < end; n++) jobs.push(subtle.digest("SHA-256", encoder.encode(salt + n)));
        var hashes = await Promise.all(jobs);
        for (var i = 0; i < hashes.length; i++) {
          if (same(new Uint8Array(hashes[i]), target)) return start + i;
        }
      }
      return null;
    }
    var since = Date.now();
    for (n = from; n <= to; n++) {
      if (same(sha256(encoder.encode(salt + n)), target)) return n;
      if ((n & 1023) === 0 && Date.now() - since > 25) { await pause(); since = Date.now(); }
    }
    return null;
  }

  if (typeof document === "undefined") {  // running as the Web Worker
    self.onmessage = function (event) {
      var c = event.data;
      solve(c.salt, c.digest, c.from, c.to).then(function (number) {
        self.postMessage({ number: number });
      });
    };
    return;
  }

  var scriptUrl = document.currentScript ? document.currentScript.src : "";

  function onPage(c) { return solve(c.salt, c.digest, 0, c.max); }

  // Up to four workers, each searching its own part of [0, max]; the first answer wins.
  function solveSomewhere(c) {
    var sameOrigin = false;
    try { sameOrigin = new URL(scriptUrl).origin === location.origin; } catch (e) { /* no URL */ }
    if (!sameOrigin || typeof Worker === "undefined") { c.where = "page"; return onPage(c); }
    c.where = "worker";
    var count = Math.max(1, Math.min(4, navigator.hardwareConcurrency || 1));
    var part = Math.ceil((c.max + 1) / count);
    return new Promise(function (resolve) {
      var workers = [], left = count, settled = false;
      function finish(number) {
        if (settled) return;
        settled = true;
        workers.forEach(function (w) { w.terminate(); });
        resolve(number);
      }
      try {
        for (var i = 0; i < count; i++) workers.push(new Worker(scriptUrl));
      } catch (e) {
        workers.forEach(function (w) { w.terminate(); });
        c.where = "page";
        resolve(onPage(c));
        return;
      }
      workers.forEach(function (worker, i) {
        worker.onmessage = function (event) {
          left -= 1;
          if (event.data.number !== null) finish(event.data.number);
          else if (left === 0) finish(null);
        };
        worker.onerror = function (event) {  // refused by a policy, say: do it here
          if (event.preventDefault) event.preventDefault();
          if (settled) return;
          settled = true;
          workers.forEach(function (w) { w.terminate(); });
          c.where = "page";
          resolve(onPage(c));
        };
        worker.postMessage({ salt: c.salt, digest: c.digest, from: i * part,
                             to: Math.min(c.max, (i + 1) * part - 1) });
      });
    });
  }

  function status(form, text) {
    var el = form.querySelector(".challenge-status, .nl-status");
    if (el) el.textContent = text;
  }

  function hidden(form, name) {
    var input = form.querySelector('input[name="' + name + '"]');
    if (!input) {
      input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      form.appendChild(input);
    }
    return input;
  }

  var jobs = new WeakMap();

  function work(form, c) {
    var started = performance.now();
    form.dataset.challengeState = "solving";
    status(form, "Running a short automatic check against signup robots\u2026");
    return solveSomewhere(c).then(function (number) {
      form.dataset.challengeMs = String(Math.round(performance.now() - started));
      form.dataset.challengeWhere = c.where || "page";
      if (number === null || number === undefined) {
        form.dataset.challengeState = "failed";  // the server will say what to do
        status(form, "");
        return;
      }
      hidden(form, "challenge").value = c.challenge;
      hidden(form, "solution").value = String(number);
      form.dataset.challengeState = "done";
      status(form, "Automatic check done.");
    });
  }

  function begin(form) {
    var job = jobs.get(form);
    if (job) return job;
    var box = form.querySelector(".challenge[data-salt]");
    if (box) {
      job = work(form, { salt: box.dataset.salt, digest: box.dataset.digest,
                         max: parseInt(box.dataset.max, 10),
                         challenge: hidden(form, "challenge").value });
    } else {
      form.dataset.challengeState = "asking";
      job = fetch(form.dataset.challengeUrl, { credentials: "omit", cache: "no-store" })
        .then(function (response) { return response.json(); })
        .then(function (answer) {
          if (!answer.required) { form.dataset.challengeState = "none"; return; }
          return work(form, answer);
        })
        .catch(function () { form.dataset.challengeState = "failed"; });
    }
    jobs.set(form, job);
    return job;
  }

  function bind(form) {
    if (form.dataset.challengeBound) return;
    form.dataset.challengeBound = "1";
    if (form.hasAttribute("data-challenge")) {
      begin(form);
    } else {
      form.addEventListener("focusin", function () { begin(form); }, { once: true });
    }
    form.addEventListener("submit", function (event) {
      var state = form.dataset.challengeState;
      if (state === "done" || state === "none" || state === "failed") return;
      event.preventDefault();
      if (form.dataset.challengeWaiting) return;  // a second click while waiting
      form.dataset.challengeWaiting = "1";
      status(form, "Finishing the automatic check\u2026");
      var send = function () { HTMLFormElement.prototype.submit.call(form); };
      begin(form).then(send, send);
    });
  }

  document.querySelectorAll("form[data-challenge], form[data-challenge-url]").forEach(bind);
})();
