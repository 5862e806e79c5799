/**
 * `npm run promote -- <environment> <image>@sha256:<digest>`: points an environment's functions image at
 * that digest in environments/<environment>/kustomization.yaml. The pipeline runs it and commits the
 * change (.github/workflows/delivery.yaml); by hand it is the same. Mistakes get one line and exit code 2.
 */
import { EnvironmentError, readEnvironment, setImage } from './environments';

const usage = 'usage: npm run promote -- <environment> <image>@sha256:<digest>   (e.g. staging ghcr.io/<owner>/<repository>/functions@sha256:...)';

function main(argv: string[]): void {
  if (argv.length !== 2 || argv.some((arg) => arg.startsWith('-'))) throw new EnvironmentError(usage);
  const [name, image] = argv as [string, string];
  const environment = readEnvironment(name);
  const before = setImage(environment, image);
  if (before === undefined) console.log(`${name} already runs ${image}`);
  else console.log(`${name}: ${before} -> ${image} (${environment.kustomizationFile})`);
}

try {
  main(process.argv.slice(2));
} catch (error) {
  if (!(error instanceof EnvironmentError)) throw error;
  console.error(`promote: ${error.message}`);
  process.exitCode = 2;
}
