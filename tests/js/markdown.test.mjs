// Model output is text: markup in it is shown, never run.
import assert from "node:assert/strict";
import { test } from "node:test";

import { renderMarkdown } from "../../router/hearth_router/dashboard/markdown.js";
import { doneSummary, downloadSummary, duration, leftText, secondsLeft, stageText } from "../../router/hearth_router/dashboard/format.js";

test("script and event-handler markup come out as text", () => {
  const html = renderMarkdown('<script>alert(1)</script> <img src=x onerror="alert(2)">');
  assert.ok(!html.includes("<script"));
  assert.ok(!html.includes("<img"));
  assert.ok(html.includes("&lt;script&gt;alert(1)&lt;/script&gt;"));
});

test("markup inside code blocks, links and emphasis is escaped too", () => {
  const html = renderMarkdown("```html\n<b onclick=x>hi</b>\n```\n**<i>bold</i>** [a](javascript:alert(1)) [b](https://example.org/\"onmouseover=x)");
  assert.ok(html.includes('<pre><code class="language-html">&lt;b onclick=x&gt;hi&lt;/b&gt;</code></pre>'));
  assert.ok(html.includes("<strong>&lt;i&gt;bold&lt;/i&gt;</strong>"));
  assert.ok(!html.includes('href="javascript'));
  assert.ok(!/href="[^"]*"onmouseover/.test(html));
});

test("the usual chat markdown renders", () => {
  const html = renderMarkdown("# Title\n\n- one\n- two `x`\n\n1. first\n\n> quoted\n\nplain *em* and _em_");
  assert.ok(html.includes("<h3>Title</h3>"));
  assert.ok(html.includes("<ul><li>one</li><li>two <code>x</code></li></ul>"));
  assert.ok(html.includes("<ol><li>first</li></ol>"));
  assert.ok(html.includes("<blockquote>quoted</blockquote>"));
  assert.ok(html.includes("<em>em</em> and <em>em</em>"));
});

test("the stage drops the router's snapshot ETA; the countdown never shows 0 while waiting", () => {
  assert.equal(stageText({ status: "loading", message: "Warming up medium on 3090… ~23 s" }), "Warming up medium on 3090…");
  assert.equal(secondsLeft({ estimatedTime: 3 }, 0, 1000), 2);
  assert.equal(secondsLeft({ estimatedTime: 1 }, 0, 5000), 1);
});

test("durations read as people say them, never '4 min 60 s'", () => {
  assert.equal(duration(4.25), "4.3 s");
  assert.equal(duration(119.6), "2 min");
  assert.equal(duration(299.7), "5 min");
  assert.equal(duration(185), "3 min 5 s");
});

test("a download reads as bytes, rate and time left; its message loses its snapshot ETA", () => {
  const download = downloadSummary({ bytes: 3.2 * 2 ** 30, totalBytes: 14.9 * 2 ** 30, bytesPerSecond: 48 * 2 ** 20, etaSeconds: 241.3 });
  assert.equal(download.text, "3.2 GiB of 14.9 GiB · 48.0 MiB/s · ~5 min left");
  assert.ok(Math.abs(download.fraction - 3.2 / 14.9) < 1e-9);
  assert.equal(downloadSummary({ bytes: 1024 }).fraction, null); // no total yet: an indeterminate bar
  const message = "Downloading big for the first time: 3.2 GiB of 14.9 GiB at 48.0 MiB/s · ~5 min";
  assert.equal(stageText({ status: "downloading", message }), "Downloading big for the first time: 3.2 GiB of 14.9 GiB at 48.0 MiB/s");
  assert.equal(leftText(240), "~4 min");
  assert.equal(leftText(40), "~40 s");
});

test("a slow answer's speed keeps a decimal; one not measured is left out, never '0 tokens/s'", () => {
  const usage = { completion_tokens: 7 };
  assert.equal(doneSummary({ usage, generatingSeconds: 22 }), "0.3 tokens/s · 7 tokens");
  assert.equal(doneSummary({ usage: { completion_tokens: 380 }, generatingSeconds: 10 }), "38 tokens/s · 380 tokens");
  assert.equal(doneSummary({ usage, generatingSeconds: 0 }), "7 tokens");
});
