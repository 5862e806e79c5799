-- The ping counter is a single row: `n` is the number of pings so far.
create table pings (
  id boolean primary key default true check (id),
  n bigint not null check (n >= 0)
);

insert into pings (n) values (0);
