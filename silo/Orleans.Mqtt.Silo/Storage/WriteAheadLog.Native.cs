using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Orleans.Mqtt.Silo.Storage;

/// <summary>The Linux system calls of <see cref="WriteAheadLog"/>.</summary>
internal sealed partial class WriteAheadLog
{
    /// <summary>The Linux calls .NET does not offer: allocating file space, syncing data without metadata, syncing a directory.</summary>
    private static partial class Native
    {
        /// <summary>Allocates <paramref name="length"/> bytes from <paramref name="offset"/>; returns 0 or the errno.</summary>
        public static int Allocate(SafeFileHandle file, long offset, long length) =>
            fallocate(file, 0, offset, length) == 0 ? 0 : Marshal.GetLastPInvokeError();

        public static void SyncData(SafeFileHandle file)
        {
            if (fdatasync(file) != 0)
            {
                throw new IOException($"fdatasync of a write-ahead log segment failed (errno {Marshal.GetLastPInvokeError()})");
            }
        }

        public static void SyncDirectory(string directory)
        {
            var fd = open(directory, 0); // O_RDONLY
            if (fd < 0)
            {
                throw new IOException($"Could not open the write-ahead log directory {directory} to sync it (errno {Marshal.GetLastPInvokeError()})");
            }

            try
            {
                if (fsync(fd) != 0)
                {
                    throw new IOException($"fsync of the write-ahead log directory {directory} failed (errno {Marshal.GetLastPInvokeError()})");
                }
            }
            finally
            {
                _ = close(fd);
            }
        }

        [LibraryImport("libc", SetLastError = true)]
        private static partial int fallocate(SafeFileHandle fd, int mode, long offset, long length);

        [LibraryImport("libc", SetLastError = true)]
        private static partial int fdatasync(SafeFileHandle fd);

        [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        private static partial int open(string path, int flags);

        [LibraryImport("libc", SetLastError = true)]
        private static partial int fsync(int fd);

        [LibraryImport("libc", SetLastError = true)]
        private static partial int close(int fd);
    }
}
