using System.Collections.Immutable;
using System.Net;
using Orleans.Mqtt.Grains;
using Xunit;

namespace Orleans.Mqtt.Tests.Grains;

public sealed class SessionHoldersTests
{
    private const int Clients = 20_000;

    [Fact]
    public void The_holders_leave_out_the_home_and_inactive_silos_and_every_silo_computes_the_same_order()
    {
        var silos = Silos(5);
        var snapshot = Snapshot(silos, dead: silos[3]);

        for (var i = 0; i < 200; i++)
        {
            var ranked = SessionHolders.Rank(snapshot, $"client-{i}", "silo-1", exclude: null);
            Assert.Equal(3, ranked.Count);
            Assert.DoesNotContain(silos[1], ranked);
            Assert.DoesNotContain(silos[3], ranked);

            // Order by silo name only: the same silos under other addresses (restarted) rank the same.
            var restarted = Snapshot(Silos(5, port: 20000), dead: null);
            var again = SessionHolders.Rank(restarted, $"client-{i}", "silo-1", exclude: null).Select(s => s.Endpoint.Port - 20000);
            Assert.Equal(ranked.Select(s => s.Endpoint.Port - 11111), again.Where(p => p != 3));
        }
    }

    [Fact]
    public void A_silo_that_joins_takes_the_first_place_of_about_one_session_in_n_and_moves_no_other()
    {
        var four = Snapshot(Silos(4), dead: null);
        var five = Snapshot(Silos(5), dead: null);
        var moved = 0;
        var firsts = new int[5];
        for (var i = 0; i < Clients; i++)
        {
            var before = SessionHolders.Rank(four, $"client-{i}", home: null, exclude: null)[0];
            var after = SessionHolders.Rank(five, $"client-{i}", home: null, exclude: null)[0];
            firsts[after.Endpoint.Port - 11111]++;
            if (!before.Equals(after))
            {
                // A session's holder changes only to the new silo.
                Assert.Equal(11111 + 4, after.Endpoint.Port);
                moved++;
            }
        }

        // One in five, give or take a few percent; the load is spread evenly.
        Assert.InRange(moved, Clients / 5 * 0.9, Clients / 5 * 1.1);
        Assert.All(firsts, n => Assert.InRange(n, Clients / 5 * 0.9, Clients / 5 * 1.1));
    }

    [Theory]
    [InlineData(2, 2)]
    [InlineData(3, 3)]
    public void The_entry_holders_of_one_view_are_the_home_and_the_first_of_the_full_ranking(int copies, int sessionReplicas)
    {
        // Twenty silos, one dead: what RouteHolders computes once per view agrees with the ranking sorted per client.
        // A session homed on the dead silo has its entry on one more silo, as many as its copies are kept on then.
        var silos = Silos(20);
        var snapshot = Snapshot(silos, dead: silos[7]);
        var holders = new RouteHolders(Microsoft.Extensions.Options.Options.Create(new MqttBrokerOptions
        {
            Routes = new RoutesOptions { Sharding = RouteSharding.Topic, Copies = copies },
            SessionReplicas = sessionReplicas,
        }));
        for (var i = 0; i < 500; i++)
        {
            var clientId = $"client-{i}";
            string? home = (i % 3) switch { 0 => null, 1 => $"silo-{i % 20}", _ => "silo-7" };
            var homeLost = home == "silo-7";
            var expected = SessionHolders.Rank(snapshot, clientId, home, exclude: null).Take(holders.EntryCopies + (homeLost ? 1 : 0)).ToHashSet();
            if (home is not null && !homeLost)
            {
                expected.Add(silos[i % 20]);
            }

            if (home is not null)
            {
                // Every silo that holds a copy of the session, or would be sent one, holds the entry its recovery reads.
                Assert.Subset(expected, SessionHolders.CopyHolders(snapshot, clientId, home, sessionReplicas).ToHashSet());
            }

            Assert.Equal(expected.OrderBy(s => s), holders.EntryHoldersOf(snapshot, clientId, home).OrderBy(s => s));
            Assert.All(silos, s => Assert.Equal(expected.Contains(s), holders.IsEntryHolder(snapshot, clientId, home, s)));
            Assert.All(silos, s => Assert.Equal(
                SessionHolders.Rank(snapshot, clientId, null, exclude: null).IndexOf(s) is >= 0 and var at && at < holders.EntryCopies,
                holders.IsSureEntryHolder(snapshot, clientId, s)));
        }
    }

    private static SiloAddress[] Silos(int count, int port = 11111) =>
        [.. Enumerable.Range(0, count).Select(i => SiloAddress.New(new IPEndPoint(IPAddress.Loopback, port + i), 1))];

    private static ClusterMembershipSnapshot Snapshot(SiloAddress[] silos, SiloAddress? dead)
    {
        var members = ImmutableDictionary.CreateBuilder<SiloAddress, ClusterMember>();
        for (var i = 0; i < silos.Length; i++)
        {
            members[silos[i]] = new ClusterMember(silos[i], silos[i].Equals(dead) ? SiloStatus.Dead : SiloStatus.Active, $"silo-{i}");
        }

        return new ClusterMembershipSnapshot(members.ToImmutable(), new MembershipVersion(1));
    }
}
