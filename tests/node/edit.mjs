// One edit through the openai npm package against prefpaint serve; prints what came back as JSON lines.
// Usage: node edit.mjs BASE_URL IMAGE.png MASK.png   (run by tests/test_serve_node.py)
import fs from "node:fs";
import OpenAI, { toFile } from "openai";

const [base, imagePath, maskPath] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: "unused", maxRetries: 0 });
const files = async () => ({
  image: await toFile(fs.readFileSync(imagePath), "in.png", { type: "image/png" }),
  mask: await toFile(fs.readFileSync(maskPath), "mask.png", { type: "image/png" }),
});

const res = await client.images.edit({
  ...(await files()), prompt: "", n: 2, output_format: "webp", size: "128x96", quality: "medium", seed: 4,
});
console.log(JSON.stringify({ kind: "answer", answer: res }));

const stream = await client.images.edit({ ...(await files()), prompt: "", stream: true, partial_images: 2, seed: 4 });
for await (const event of stream) {
  console.log(JSON.stringify({ kind: "event", event }));
}

try {
  await client.images.edit({
    image: [await toFile(fs.readFileSync(imagePath), "a.png", { type: "image/png" }),
            await toFile(fs.readFileSync(imagePath), "b.png", { type: "image/png" })],
    prompt: "",
  });
  console.log(JSON.stringify({ kind: "refused", status: null }));
} catch (err) {
  console.log(JSON.stringify({ kind: "refused", status: err.status, param: err.param ?? err.error?.param }));
}
