/** The machine's ceiling: bare `node:http` answering the same body, no framework. */
import { createServer } from 'node:http';

createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' }).end('hello');
}).listen(Number(process.env.PORT));
