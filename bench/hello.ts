/** The framework's own ceiling: functions-framework serving a function that does nothing but answer. */
import { http } from '@google-cloud/functions-framework';

http('hello', (_req, res) => {
  res.type('text/plain').send('hello');
});
