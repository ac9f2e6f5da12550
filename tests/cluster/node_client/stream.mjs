// Stream one chat completion through the router with the official openai-node SDK and print
// what a user's code would see: the text, and the number of chunks.
import OpenAI from "openai";

const [baseURL, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0 });
const stream = await client.chat.completions.create({
  model,
  stream: true,
  messages: [{ role: "user", content: "why is it cold?" }],
});
let text = "";
let chunks = 0;
for await (const chunk of stream) {
  chunks += 1;
  text += chunk.choices[0]?.delta?.content || "";
}
console.log(JSON.stringify({ text, chunks }));
