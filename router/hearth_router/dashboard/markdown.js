// Markdown for model replies, rendered safely: every character of the model's text is escaped
// before any markup is added, so a reply can show `<script>` but never run it. Only the subset
// chat models use: code fences, inline code, bold, italics, links (http/https only), headings,
// lists, quotes, paragraphs.

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

/** Inline markup on one line of already-escaped text (code spans are cut out first). */
function inline(escaped) {
  const spans = [];
  let text = escaped.replace(/`([^`]+)`/g, (_, code) => {
    spans.push(`<code>${code}</code>`);
    return `\u0000${spans.length - 1}\u0000`;
  });
  text = text
    .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")
    .replace(/(^|[^*\w])\*([^*\s][^*]*)\*(?!\w)/g, "$1<em>$2</em>")
    .replace(/(^|[^_\w])_([^_\s][^_]*)_(?!\w)/g, "$1<em>$2</em>")
    .replace(/\[([^\]]+)\]\((https?:\/\/[^\s)"]+)\)/g, '<a href="$2" rel="noopener noreferrer" target="_blank">$1</a>');
  return text.replace(/\u0000(\d+)\u0000/g, (_, i) => spans[Number(i)]);
}

function listItems(lines, ordered) {
  const tag = ordered ? "ol" : "ul";
  const items = lines.map((l) => `<li>${inline(l.replace(/^\s*(?:[-*+]|\d+[.)])\s+/, ""))}</li>`);
  return `<${tag}>${items.join("")}</${tag}>`;
}

/** Markdown → HTML in which every piece of the input is escaped text. */
export function renderMarkdown(source) {
  const lines = escapeHtml(source).split(/\r?\n/);
  const out = [];
  let paragraph = [];
  const flush = () => {
    if (paragraph.length) out.push(`<p>${paragraph.map(inline).join("<br>")}</p>`);
    paragraph = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const fence = line.match(/^\s*```\s*([\w+-]*)\s*$/);
    if (fence) {
      flush();
      const code = [];
      for (i++; i < lines.length && !/^\s*```\s*$/.test(lines[i]); i++) code.push(lines[i]);
      const lang = fence[1] ? ` class="language-${fence[1]}"` : "";
      out.push(`<pre><code${lang}>${code.join("\n")}</code></pre>`);
      continue;
    }
    const heading = line.match(/^(#{1,6})\s+(.*)$/);
    if (heading) {
      flush();
      const level = Math.min(heading[1].length + 2, 6); // inside a reply: never larger than h3
      out.push(`<h${level}>${inline(heading[2])}</h${level}>`);
      continue;
    }
    const bullet = /^\s*[-*+]\s+/;
    const numbered = /^\s*\d+[.)]\s+/;
    if (bullet.test(line) || numbered.test(line)) {
      flush();
      const ordered = numbered.test(line);
      const pattern = ordered ? numbered : bullet;
      const items = [];
      while (i < lines.length && pattern.test(lines[i])) items.push(lines[i++]);
      i--;
      out.push(listItems(items, ordered));
      continue;
    }
    if (/^&gt;\s?/.test(line)) {
      flush();
      const quoted = [];
      while (i < lines.length && /^&gt;\s?/.test(lines[i])) quoted.push(lines[i++].replace(/^&gt;\s?/, ""));
      i--;
      out.push(`<blockquote>${quoted.map(inline).join("<br>")}</blockquote>`);
      continue;
    }
    if (line.trim() === "") {
      flush();
      continue;
    }
    paragraph.push(line);
  }
  flush();
  return out.join("");
}
